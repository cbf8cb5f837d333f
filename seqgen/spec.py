"""Loading, overriding, validating and resolving a run spec.

Validation runs in two passes and reports every problem at once, each led by its JSON
path: the spec against `schemas/spec.schema.json` (where each component is just an
object with a "type"), then each component's options against the schema its plugin
registered. Defaults are filled from both, so the resolved spec says everything a run
used and can be run again as is.
"""
from __future__ import annotations

import copy
import json
import math
import re
import stat
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from jsonschema import Draft202012Validator

from .components import PLURAL, Component
from .data import CAUSAL_TASKS
from .precision import amp_problem
from .errors import SpecError
from .paths import kind_of
from .interpolate import escape
from .registry import Registry

KIND_KEY = "x-seqgen-kind"


def base_schema() -> dict:
    """The spec schema shipped as package data (components are bare {"type": ...})."""
    text = resources.files("seqgen.schemas").joinpath("spec.schema.json").read_text("utf-8")
    return json.loads(text)


# -- reading ----------------------------------------------------------------------------
def load_spec_file(path: str | Path) -> dict:
    """Read a spec; malformed JSON is reported with its line and column."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise SpecError([f"{path} is a directory, not a spec file"])
        if not stat.S_ISREG(mode):    # a FIFO would block, /dev/zero never end
            raise SpecError([f"{path} is {kind_of(mode)}, not a spec file"])
        text = path.read_bytes()
    except FileNotFoundError:
        raise SpecError([f"spec file not found: {path}"]) from None
    except (OSError, ValueError, UnicodeError) as e:   # too long, NUL, unencodable, EIO...
        reason = getattr(e, "strerror", None) or str(e)
        raise SpecError([f"cannot read spec file {str(path)[:200]!r}: {reason}"]) from None
    return parse_spec(decode_spec(text, str(path)), str(path))


def decode_spec(data: bytes, source: str) -> str:
    """Spec bytes as text: UTF-8, with or without a byte-order mark."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpecError([f"not valid UTF-8 at byte {e.start}"], source=source) from None


def parse_spec(text: str, source: str) -> dict:
    """A spec from JSON text (`source` names it in errors)."""
    if not text.strip():
        raise SpecError(["the spec is empty (expected a JSON object)"], source=source)
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError([f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"],
                        source=source) from None
    except RecursionError:   # the JSON reader recurses per level: far too deep for a spec
        raise SpecError([too_deep("$")], source=source) from None
    if not isinstance(spec, dict):
        raise SpecError([f"$: the spec must be a JSON object, not {type(spec).__name__}"],
                        source=source)
    check_nesting(spec, source=source)
    return spec


# -- nesting ----------------------------------------------------------------------------
MAX_NESTING = 100   # objects/arrays inside each other; real specs use under 10


def too_deep(path: str) -> str:
    """The problem, led by the top-level field that holds it (the full path would be
    over a hundred steps long)."""
    top = re.match(r"\$(\.[^.\[]*|\[\d+\])?", path)
    where = top.group(0) if top and path.startswith("$") else path
    return (f"{where}: objects and arrays nested more than {MAX_NESTING} levels deep "
            f"(no spec needs more than a few)")


def nesting_problem(node: Any, path: str = "$", limit: int = MAX_NESTING) -> str | None:
    """Where `node` nests objects/arrays more than `limit` levels deep, or None. Checked
    without recursion, right after a spec is read, so that every recursive walk after it
    (composing, interpolating, validating, copying) stays far from Python's limit."""
    stack = [(node, 1, path)]                  # (container, its level: the top is 1, path)
    while stack:
        node, level, where = stack.pop()
        children = (node.items() if isinstance(node, dict) else
                    enumerate(node) if isinstance(node, list) else ())
        for key, value in children:
            if isinstance(value, (dict, list)):
                sub = f"{where}.{key}" if isinstance(node, dict) else f"{where}[{key}]"
                if level + 1 > limit:
                    return too_deep(sub)
                stack.append((value, level + 1, sub))
    return None


def check_nesting(node: Any, path: str = "$", source: str | None = None) -> None:
    if (problem := nesting_problem(node, path)) is not None:
        raise SpecError([problem], source=source)


def spec_text(spec: dict) -> str:
    """A resolved spec as the JSON a run directory keeps: running it again resolves to
    `spec` (literal "${" in values are escaped as "$${")."""
    return json.dumps(escape(spec), indent=2, ensure_ascii=False) + "\n"


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=value' -> (['a', 'b'], value); the value is JSON if it parses, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError([f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=3"])
    keys = key.strip().split(".")
    label = ".".join(keys) if len(keys) <= 3 else ".".join(keys[:3]) + "..."
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    except RecursionError:   # the JSON reader recurses per level
        raise SpecError([too_deep(f"--set {label}")]) from None
    if len(keys) >= MAX_NESTING or nesting_problem(value, limit=MAX_NESTING - len(keys)):
        raise SpecError([too_deep(f"--set {label}")])
    return keys, value


def apply_overrides(spec: dict, overrides: list[str]) -> dict:
    """Return a copy of `spec` with each 'a.b=value' set, creating objects on the way."""
    spec = copy.deepcopy(spec)
    for text in overrides:
        keys, value = parse_override(text)
        node = spec
        for i, key in enumerate(keys[:-1]):
            if isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
                continue
            if not isinstance(node, dict):
                raise SpecError([f"--set {text!r}: $.{'.'.join(keys[:i])} is not an object"])
            node = node.setdefault(key, {})
        last = keys[-1]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise SpecError([f"--set {text!r}: $.{'.'.join(keys[:-1])} is not an object"])
    return spec


# -- validating -------------------------------------------------------------------------
def component_schema(component: Component) -> dict:
    """A component's options schema with "type" added and unknown keys forbidden."""
    schema = copy.deepcopy(component.schema)
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {})
    props["type"] = {"const": component.name, "description": component.description}
    schema.setdefault("additionalProperties", False)
    return schema


def branch(schema: dict, instance: Any) -> dict:
    """The part of `schema` that describes `instance`: for an if/then/else schema (the
    model section: a language model or a seq2seq model), the branch that applies."""
    if not isinstance(schema.get("if"), dict):
        return schema
    chosen = "then" if Draft202012Validator(schema["if"]).is_valid(instance) else "else"
    return schema.get(chosen) if isinstance(schema.get(chosen), dict) else {}


def fill_defaults(instance: Any, schema: dict) -> None:
    """Fill missing properties that have a "default", recursing into objects and arrays.
    A component given without a "type" (`--set train.optimizer.lr=0.01`) takes its slot's
    default component, with the given options on top."""
    schema = branch(schema, instance)
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            given, default = instance.get(key), sub.get("default")
            if (KIND_KEY in sub and isinstance(given, dict) and "type" not in given
                    and isinstance(default, dict) and "type" in default):
                instance[key] = {**copy.deepcopy(default), **given}
            if key in instance and KIND_KEY not in sub:
                fill_defaults(instance[key], sub)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        if KIND_KEY not in schema["items"]:
            for item in instance:
                fill_defaults(item, schema["items"])


def iter_components(instance: Any, schema: dict, path: str = "$") -> Iterator[tuple[str, str, dict]]:
    """Yield (json_path, kind, object) for every component slot present in `instance`."""
    if KIND_KEY in schema:
        if isinstance(instance, dict) and isinstance(instance.get("type"), str):
            yield path, schema[KIND_KEY], instance
        return
    schema = branch(schema, instance)
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                yield from iter_components(instance[key], sub, f"{path}.{key}")
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(instance):
            yield from iter_components(item, schema["items"], f"{path}[{i}]")


def component_slots(component: Component) -> list[tuple[str, str, bool]]:
    """(option, kind, is_list) for every option of a component that holds components."""
    slots = []
    for key, sub in component.schema.get("properties", {}).items():
        if isinstance(sub, dict) and KIND_KEY in sub:
            slots.append((key, sub[KIND_KEY], False))
        elif isinstance(sub, dict) and isinstance(sub.get("items"), dict) and KIND_KEY in sub["items"]:
            slots.append((key, sub["items"][KIND_KEY], True))
    return slots


def all_components(spec: dict, registry: Registry) -> Iterator[tuple[str, str, dict]]:
    """(json_path, kind, object) for every component of a resolved spec, nested included."""
    def walk(path: str, kind: str, obj: dict):
        yield path, kind, obj
        component = registry.get(kind, obj["type"])
        for sub in iter_components(obj, component_schema(component), path):
            yield from walk(*sub)
    for top in iter_components(spec, base_schema()):
        yield from walk(*top)


PLACEHOLDER = re.compile(r"<required: .*>", re.S)   # what `seqgen init` leaves to fill in


def value_problems(node: Any, path: str = "$") -> list[str]:
    """Values no schema keyword catches: NaN and infinities (Python's JSON reader accepts
    them; no JSON number is one), and `seqgen init`'s placeholders left unfilled."""
    if isinstance(node, dict):
        return [p for k, v in node.items()
                for p in _text_problems(k, f"{path}.{k!r}") + value_problems(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in value_problems(v, f"{path}[{i}]")]
    if isinstance(node, str) and (problem := _text_problems(node, path)):
        return problem
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{path}: {node} is not a finite number"]
    if isinstance(node, str) and PLACEHOLDER.fullmatch(node):
        return [f"{path}: still the placeholder {node!r}: fill it in"]
    return []


def _text_problems(text: str, path: str) -> list[str]:
    """Text that is not Unicode (a lone surrogate, e.g. from an undecodable byte in argv)
    can be neither written to a file nor printed."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return [f"{path.encode('utf-8', 'backslashreplace').decode()}: holds "
                f"{text[e.start]!r}, which is not a Unicode character"]
    return []


def coerce_integers(instance: Any, schema: Any, root: dict | None = None) -> Any:
    """`instance` with every integer-valued float (8.0) made an int (8) wherever `schema`
    says "integer" (alone or with "null", not with "number"): JSON Schema counts 8.0 as
    an integer, Python and torch do not (`range(8.0)` fails). Objects and arrays are
    changed in place and walked as `schema` describes them (properties, items,
    prefixItems, additionalProperties, local $refs, allOf/anyOf/oneOf, if/then/else);
    component slots are left to their own component's schema. Returns the (possibly
    new) value. Call it after validation, so that errors show the value as written."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or KIND_KEY in schema:
        return instance
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#") and ref != "#":
        target: Any = root
        for part in ref[1:].strip("/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        instance = coerce_integers(instance, target, root)
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types if isinstance(types, list) else []
    if (isinstance(instance, float) and "integer" in types and "number" not in types
            and instance.is_integer()):
        return int(instance)
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []) if isinstance(schema.get(key), list) else []:
            instance = coerce_integers(instance, sub, root)
    if isinstance(schema.get("if"), dict):
        branch = "then" if Draft202012Validator(schema["if"]).is_valid(instance) else "else"
        instance = coerce_integers(instance, schema.get(branch), root)
    if isinstance(instance, dict):
        props = schema.get("properties", {}) if isinstance(schema.get("properties"), dict) else {}
        patterns = schema.get("patternProperties")
        patterns = patterns if isinstance(patterns, dict) else {}
        for key in list(instance):
            subs = [props[key]] if key in props else []
            subs += [sub for pattern, sub in patterns.items() if re.search(pattern, key)]
            if not subs and isinstance(schema.get("additionalProperties"), dict):
                subs = [schema["additionalProperties"]]
            for sub in subs:
                instance[key] = coerce_integers(instance[key], sub, root)
    elif isinstance(instance, list):
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        for i, item in enumerate(instance):
            sub = prefix[i] if i < len(prefix) else schema.get("items")
            instance[i] = coerce_integers(item, sub, root)
    return instance


def schema_problems(instance: Any, schema: dict, prefix: str = "$") -> list[str]:
    """Every schema error, path-led. A NaN or infinity is left to `value_problems`
    (which every caller runs too), so it is reported once, not also as out of range."""
    validator = Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        if isinstance(error.instance, float) and not math.isfinite(error.instance):
            continue
        path = prefix + error.json_path[1:]
        problems.append(f"{path}: {_message(error)}")
    return problems


def _message(error) -> str:
    if error.validator in ("pattern", "not") and error.schema.get("description"):
        # a regex or a negation says nothing to a user; the field's description does
        return f"{error.instance!r} is not allowed: {error.schema['description']}"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}. Allowed: {', '.join(allowed)}"
    if (error.validator == "required" and isinstance(error.schema, dict)
            and error.schema.get("description") and "properties" not in error.schema):
        return error.schema["description"]   # a bare requirement (if/then branch) says what to give
    return error.message


def resolve(spec: dict, registry: Registry, source: str | None = None) -> dict:
    """Validate `spec` against the base schema and every component's schema, fill
    defaults, and return the resolved copy. Raises SpecError listing every problem."""
    check_nesting(spec, source=source)
    resolved = copy.deepcopy(spec)
    schema = base_schema()
    fill_defaults(resolved, schema)
    problems = value_problems(resolved) + schema_problems(resolved, schema)
    coerce_integers(resolved, schema)
    for path, kind, obj in iter_components(resolved, schema):
        problems += resolve_component(registry, kind, obj, path)
    if not problems:
        problems += _cross_checks(resolved, registry)
    if problems:
        raise SpecError(problems, source=source)
    return resolved


# Arguments of the Python API's generation calls, and the spec field each one means.
ARGUMENT_FIELDS = {"prompts": ("generate", "prompts"),
                   "max_new_tokens": ("generate", "max_new_tokens"),
                   "num_samples": ("generate", "num_samples"), "seed": ("seed",),
                   "on_unknown": ("generate", "on_unknown")}


def check_arguments(**values: Any) -> dict:
    """Arguments of an API call (LoadedModel.generate's num_samples, seed, ...) checked
    against the schema of the spec field of the same meaning, so they take exactly what
    a spec may say: integer-valued floats become ints (2.0 -> 2); anything else wrong is
    a SpecError naming the argument. Returns the checked values by name."""
    base, problems, out = base_schema(), [], {}
    for name, value in values.items():
        schema: Any = base
        for key in ARGUMENT_FIELDS[name]:
            schema = schema["properties"][key]
        # prompts are text for the vocabulary, whose on_unknown rule decides about any
        # character it lacks, a lone surrogate from an undecodable byte included
        found = ((value_problems(value, name) if name != "prompts" else [])
                 or schema_problems(value, schema, name))
        problems += found
        out[name] = value if found else coerce_integers(copy.deepcopy(value), schema)
    if problems:
        raise SpecError(problems)
    return out


def resolve_model(model: dict, registry: Registry) -> dict:
    """Validate and fill a spec's model section alone (what loading a checkpoint needs)."""
    check_nesting(model, "$.model")
    resolved = copy.deepcopy(model)
    base = base_schema()
    schema = {**base["properties"]["model"], "$defs": base["$defs"]}
    fill_defaults(resolved, schema)
    problems = value_problems(resolved, "$.model") + schema_problems(resolved, schema, "$.model")
    resolved = coerce_integers(resolved, schema)
    for path, kind, obj in iter_components(resolved, schema, "$.model"):
        problems += resolve_component(registry, kind, obj, path)
    if problems:
        raise SpecError(problems)
    return resolved


def resolve_component(registry: Registry, kind: str, obj: dict, path: str = "$") -> list[str]:
    """Fill a component object's defaults in place, and those of the components in its
    own slots (e.g. a strategy's processors); return every problem (path-led)."""
    if not registry.has(kind, obj["type"]):
        return [f"{path}.type: {registry.unknown_message(kind, obj['type'])}"]
    comp_schema = component_schema(registry.get(kind, obj["type"]))
    fill_defaults(obj, comp_schema)
    problems = schema_problems(obj, comp_schema, path)
    coerce_integers(obj, comp_schema)
    for sub_path, sub_kind, sub in iter_components(obj, comp_schema, path):
        problems += resolve_component(registry, sub_kind, sub, sub_path)
    return problems


def _cross_checks(spec: dict, registry: Registry) -> list[str]:
    """Rules that span components: what a cell may see, what a sampler can batch, and
    loggers that would write the same file."""
    from .paths import spec_problems            # issue 12: $.name and $.out path policy
    problems = spec_problems(spec)
    paths: dict[str, int] = {}
    for i, logger in enumerate(spec["train"].get("loggers", [])):
        path = logger.get("path")
        if isinstance(path, str) and path in paths:
            problems.append(f"$.train.loggers[{i}].path: {path!r} is also the path of "
                            f"$.train.loggers[{paths[path]}]; give each logger its own file")
        paths.setdefault(path, i)
    # A strategy that finds at most N sequences per prompt (beam: its width) declares the
    # option holding N when registered (max_samples="width"): refuse before training.
    gen = spec["generate"]
    for i, options in enumerate(gen["strategies"]):
        option = registry.get("strategy", options["type"]).extra.get("max_samples")
        most = options.get(option) if isinstance(option, str) else None
        if isinstance(most, int) and gen["num_samples"] > most:
            problems.append(f"$.generate.num_samples: {gen['num_samples']} samples per prompt, "
                            f"but $.generate.strategies[{i}] ({options['type']}) finds at most "
                            f"{option}={most}; raise $.generate.strategies[{i}].{option} or "
                            f"lower num_samples")
    if spec["device"] != "auto" and not spec["device"].startswith("cuda"):
        if (problem := amp_problem(spec["train"]["amp"], spec["device"])) is not None:
            problems.append(problem)        # an explicit CPU (or mps) device: known now
    dataset = registry.get("dataset", spec["dataset"]["type"])
    task = dataset.extra.get("task")
    for problem in (model_task_problem(spec, task), bidirectional_problem(spec, task)):
        if problem is not None:
            problems.append(problem)
    sampler = registry.get("sampler", spec["sampler"]["type"])
    accepts = sampler.extra.get("accepts")
    shape = {"lm": "stream", "lines": "sequences", "aligned": "sequences",
             "seq2seq": "pairs"}.get(task)
    if accepts and shape:
        accepts = (accepts,) if isinstance(accepts, str) else tuple(accepts)
        if shape not in accepts:
            fits = [c.name for c in registry.all("sampler")
                    if shape in _as_tuple(c.extra.get("accepts"))]
            problems.append(
                f"$.sampler.type: sampler {sampler.name!r} batches {' or '.join(accepts)} data, "
                f"but dataset {dataset.name!r} gives {shape}. Samplers that fit: "
                f"{', '.join(fits) or '(none)'}.")
    return problems


def is_seq2seq(model: dict) -> bool:
    """Whether a spec's model section describes an encoder-decoder model."""
    return model.get("type") == "seq2seq"


def model_task_problem(spec: dict, task: str | None) -> str | None:
    """Why the spec's kind of model cannot learn the dataset's task, or None."""
    seq2seq, dataset = is_seq2seq(spec["model"]), spec["dataset"]["type"]
    if task is None or seq2seq == (task == "seq2seq"):
        return None
    if seq2seq:
        return (f"$.model.type: an encoder-decoder model learns pairs of a source and a "
                f"target, but dataset {dataset!r} is a {task!r} task; use a dataset of task "
                f"'seq2seq' (e.g. 'translation' or 'reversal'), or drop model.type")
    return (f"$.model: dataset {dataset!r} is a 'seq2seq' task (source -> target pairs), "
            f"which needs an encoder-decoder model: \"model\": {{\"type\": \"seq2seq\", "
            f"\"encoder\": {{...}}, \"decoder\": {{...}}, \"attention\": {{...}}}}")


def bidirectional_problem(spec: dict, task: str | None) -> str | None:
    """Why a bidirectional cell cannot serve this task, or None when it can."""
    if is_seq2seq(spec["model"]):
        if not spec["model"]["decoder"]["cell"].get("bidirectional"):
            return None
        return ("$.model.decoder.cell.bidirectional: the decoder writes the target left to "
                "right, so it cannot read it from both ends; only the encoder (which reads "
                "the whole source) may be bidirectional")
    if not spec["model"]["cell"].get("bidirectional") or task not in CAUSAL_TASKS:
        return None
    return (f"$.model.cell.bidirectional: a bidirectional cell reads each sequence from both "
            f"ends, so every position would see the tokens it must predict; it cannot be "
            f"trained as a language model or generate left to right. Dataset "
            f"{spec['dataset']['type']!r} is a {task!r} task; use bidirectional cells only for "
            f"aligned tasks such as the 'pairs' dataset, or set bidirectional to false.")


def _as_tuple(value) -> tuple:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


# -- composing --------------------------------------------------------------------------
COMMENT_PROPERTY = {"description": "A note for people (`seqgen init` writes one per "
                                   "object, describing its fields); seqgen ignores it."}


def composed_schema(registry: Registry) -> dict:
    """The spec schema with every component slot expanded to the registered names and
    their options (if/then per name), for editors to validate and autocomplete. Every
    object also accepts a "$comment"."""

    def expand(node: Any, kinds: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            if KIND_KEY in node:
                return _slot_schema(node, registry, kinds, expand)
            out = {k: expand(v, kinds) for k, v in node.items()}
            if isinstance(out.get("properties"), dict):
                out["properties"].setdefault("$comment", COMMENT_PROPERTY)
            return out
        if isinstance(node, list):
            return [expand(v, kinds) for v in node]
        return node

    return expand(base_schema(), ())


def _slot_schema(slot: dict, registry: Registry, kinds: tuple[str, ...], expand) -> dict:
    kind = slot[KIND_KEY]
    components = registry.all(kind)
    out = {k: v for k, v in slot.items() if k != "$ref"}
    out.update({
        "type": "object",
        "required": ["type"],
        "description": slot.get("description", f"One of the registered {PLURAL[kind]}."),
        "properties": {"type": {"enum": [c.name for c in components]}},
    })
    if kind not in kinds:  # a kind nested in itself is left open rather than recursing
        out["allOf"] = [{"if": {"properties": {"type": {"const": c.name}}},
                         "then": expand(component_schema(c), kinds + (kind,))}
                        for c in components]
    return out
