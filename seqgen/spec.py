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
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

from jsonschema import Draft202012Validator

from .components import PLURAL, Component
from .data import CAUSAL_TASKS
from .errors import SpecError
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
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError([f"spec file not found: {path}"]) from None
    except IsADirectoryError:
        raise SpecError([f"{path} is a directory, not a spec file"]) from None
    except UnicodeDecodeError as e:
        raise SpecError([f"not valid UTF-8 at byte {e.start}"], source=str(path)) from None
    return parse_spec(text, str(path))


def parse_spec(text: str, source: str) -> dict:
    """A spec from JSON text (`source` names it in errors)."""
    if not text.strip():
        raise SpecError(["the spec is empty (expected a JSON object)"], source=source)
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError([f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"],
                        source=source) from None
    if not isinstance(spec, dict):
        raise SpecError([f"$: the spec must be a JSON object, not {type(spec).__name__}"],
                        source=source)
    return spec


def spec_text(spec: dict) -> str:
    """A resolved spec as the JSON a run directory keeps: running it again resolves to
    `spec` (literal "${" in values are escaped as "$${")."""
    return json.dumps(escape(spec), indent=2, ensure_ascii=False) + "\n"


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=value' -> (['a', 'b'], value); the value is JSON if it parses, else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError([f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=3"])
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().split("."), value


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


def fill_defaults(instance: Any, schema: dict) -> None:
    """Fill missing properties that have a "default", recursing into objects and arrays.
    A component given without a "type" (`--set train.optimizer.lr=0.01`) takes its slot's
    default component, with the given options on top."""
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
        return [p for k, v in node.items() for p in value_problems(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in value_problems(v, f"{path}[{i}]")]
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{path}: {node} is not a finite number"]
    if isinstance(node, str) and PLACEHOLDER.fullmatch(node):
        return [f"{path}: still the placeholder {node!r}: fill it in"]
    return []


def schema_problems(instance: Any, schema: dict, prefix: str = "$") -> list[str]:
    validator = Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
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
    return error.message


def resolve(spec: dict, registry: Registry, source: str | None = None) -> dict:
    """Validate `spec` against the base schema and every component's schema, fill
    defaults, and return the resolved copy. Raises SpecError listing every problem."""
    resolved = copy.deepcopy(spec)
    schema = base_schema()
    fill_defaults(resolved, schema)
    problems = value_problems(resolved) + schema_problems(resolved, schema)
    for path, kind, obj in iter_components(resolved, schema):
        problems += resolve_component(registry, kind, obj, path)
    if not problems:
        problems += _cross_checks(resolved, registry)
    if problems:
        raise SpecError(problems, source=source)
    return resolved


def resolve_model(model: dict, registry: Registry) -> dict:
    """Validate and fill a spec's model section alone (what loading a checkpoint needs)."""
    resolved = copy.deepcopy(model)
    base = base_schema()
    schema = {**base["properties"]["model"], "$defs": base["$defs"]}
    fill_defaults(resolved, schema)
    problems = value_problems(resolved, "$.model") + schema_problems(resolved, schema, "$.model")
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
    for sub_path, sub_kind, sub in iter_components(obj, comp_schema, path):
        problems += resolve_component(registry, sub_kind, sub, sub_path)
    return problems


def _cross_checks(spec: dict, registry: Registry) -> list[str]:
    """Rules that span components: what a cell may see, what a sampler can batch, and
    loggers that would write the same file."""
    problems = []
    paths: dict[str, int] = {}
    for i, logger in enumerate(spec["train"].get("loggers", [])):
        path = logger.get("path")
        if isinstance(path, str) and path in paths:
            problems.append(f"$.train.loggers[{i}].path: {path!r} is also the path of "
                            f"$.train.loggers[{paths[path]}]; give each logger its own file")
        paths.setdefault(path, i)
    dataset = registry.get("dataset", spec["dataset"]["type"])
    task = dataset.extra.get("task")
    if (problem := bidirectional_problem(spec, task)) is not None:
        problems.append(problem)
    sampler = registry.get("sampler", spec["sampler"]["type"])
    accepts = sampler.extra.get("accepts")
    shape = {"lm": "stream", "lines": "sequences", "aligned": "sequences"}.get(task)
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


def bidirectional_problem(spec: dict, task: str | None) -> str | None:
    """Why a bidirectional cell cannot serve this task, or None when it can."""
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
