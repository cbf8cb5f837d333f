"""What a checkpoint's metadata must hold, as JSON Schemas checked before anything uses it.

safetensors metadata is str -> str, and a checkpoint may be damaged or come from a
stranger: any field may be missing, not JSON, or JSON of the wrong shape. parse_metadata
parses every field and validates it against its schema, so every consumer (generate,
eval, --resume, seqgen.load, reports) meets one CheckpointError that names the file, the
field and the JSON path, instead of a KeyError or TypeError deep inside:

    runs/x/best.safetensors: metadata 'vocab': $.tokens[3]: 5 is not of type 'string'

Each schema lives beside the code that writes its field (VOCAB_SCHEMA beside
Vocab.to_dict, TRAINER_SCHEMA beside Trainer's training-state helpers). The 'format'
marker is checked before this, by checkpoint.load.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from itertools import islice
from typing import Any

from jsonschema import Draft202012Validator, validators

from .data import TASKS
from .trainstate import TRAINER_SCHEMA
from .vocab import VOCAB_SCHEMA

FORMAT_VERSIONS = ("1",)      # the checkpoint format versions this seqgen reads
SHOWN = 3                     # errors shown per field; the rest are counted as "more"


@dataclass(frozen=True)
class Field:
    required: bool
    encoded: bool             # True: a JSON document in the string; False: the string itself
    schema: dict
    default: Any = None       # for an optional field that is absent (older checkpoints)


STATE_SCHEMA = {              # Run._save: {step, epoch}, plus the trainer's in last.safetensors
    "type": "object",
    "properties": {"step": {"type": "integer", "minimum": 0},
                   "epoch": {"type": "integer", "minimum": 0},
                   "trainer": {"$id": "urn:seqgen:trainer-state", **TRAINER_SCHEMA}},
}

# In checking order. Checkpoints of the previous version have no 'components'.
FIELDS = {
    "format_version": Field(False, False, {
        "enum": list(FORMAT_VERSIONS),
        "description": f"this seqgen reads checkpoint format {', '.join(FORMAT_VERSIONS)}; "
                       f"a newer seqgen may have written it"}, FORMAT_VERSIONS[0]),
    "spec": Field(True, True, {"type": "object", "required": ["model"],
                               "properties": {"model": {"type": "object"}}}),
    "vocab": Field(True, True, VOCAB_SCHEMA),
    "source_vocab": Field(False, True, {"anyOf": [{"type": "null"}, VOCAB_SCHEMA]}),  # seq2seq
    "task": Field(True, False, {"enum": list(TASKS)}),
    "state": Field(False, True, STATE_SCHEMA, {}),
    "versions": Field(False, True, {"type": "object",
                                    "additionalProperties": {"type": "string"}}, {}),
    "components": Field(False, True, {"type": "array"}, []),   # rows: missing.believable
}


def _is_integer(checker, instance) -> bool:
    """A JSON integer: 2, not 2.0 (Draft 2020-12 accepts both) nor True."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _items(validator, items, instance, schema):
    """Draft 2020-12 `items`, with a fast path for arrays of strings: a word vocabulary's
    100k tokens take milliseconds instead of seconds."""
    if (items == {"type": "string"} and isinstance(instance, list)
            and all(isinstance(x, str) for x in instance)):
        return
    yield from Draft202012Validator.VALIDATORS["items"](validator, items, instance, schema)


Validator = validators.extend(
    Draft202012Validator, validators={"items": _items},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer))
VALIDATORS = {name: Validator(f.schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
              for name, f in FIELDS.items()}


def parse_metadata(meta: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """(the parsed value of every field, problems). Each problem names its field, e.g.
    "metadata 'spec' is missing"; defaults stand in for absent optional fields."""
    values, problems = {}, []
    for name, field in FIELDS.items():
        if name not in meta:
            if field.required:
                problems.append(f"metadata {name!r} is missing")
            values[name] = copy.deepcopy(field.default)
            continue
        try:
            value = json.loads(meta[name]) if field.encoded else meta[name]
            errors = list(islice(VALIDATORS[name].iter_errors(value), SHOWN + 1))
        except json.JSONDecodeError as e:
            problems.append(f"metadata {name!r} is not valid JSON ({e.msg} at character {e.pos})")
            continue
        except RecursionError:
            problems.append(f"metadata {name!r} is nested too deeply to read")
            continue
        problems += [_describe(name, e) for e in errors[:SHOWN]]
        if len(errors) > SHOWN:
            problems.append(f"metadata {name!r}: more problems after these")
        values[name] = value
        if name == "format_version" and errors:
            break            # another format: what else looks wrong would only mislead
    return values, problems


def _describe(name: str, error) -> str:
    path = error.json_path
    if error.validator == "format":
        return f"metadata {name!r}: invalid {error.validator_value} in {path}: {error.cause}"
    message = error.message
    if len(message) > 200:           # the repr of a whole vocabulary, say
        message = message[:120] + " … " + message[-60:]
    description = error.schema.get("description") if isinstance(error.schema, dict) else None
    return (f"metadata {name!r}: " + ("" if path == "$" else f"{path}: ") + message
            + (f" ({description})" if description else ""))
