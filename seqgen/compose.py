"""Composing a spec from its layers, remembering where every field came from.

A spec is built in this order, each layer deep-merged on top of the one before:

  1. what it `extends`: a preset (by name) or a spec file (a path, relative to the file
     that names it), itself possibly extending another; a cycle is an error naming it;
  2. the spec's own fields (from a file, standard input, or a Python dict);
  3. `--set a.b=value` overrides;
  4. interpolation of "${vars.x}" and "${env:NAME}" (see interpolate.py);
  5. then validation fills schema defaults (spec.resolve).

Merging is recursive for objects; anything else (numbers, strings, lists) is replaced,
and so is a component object whose "type" changes.
`"$comment"` keys are notes for people (`seqgen init` writes them) and are dropped here,
as is the editor's `"$schema"` link.
Each leaf's origin is kept for `seqgen validate --explain`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import SpecError, UnknownComponentError
from .interpolate import interpolate
from .legacy import drop_ignored_defaults
from .registry import Registry
from .spec import MAX_NESTING, apply_overrides, check_nesting, load_spec_file, parse_override

COMMENT_KEY = "$comment"
MAX_DEPTH = 64          # specs in one extends chain
SCHEMA_KEY = "$schema"


@dataclass(frozen=True)
class Origin:
    """Where a field's value came from: source is "preset", "file", "stdin", "python",
    "override" or "default"; name is the preset, the file or the --set text."""
    source: str
    name: str = ""

    def describe(self) -> str:
        if self.source == "preset":
            return f"preset {self.name!r}"
        if self.source == "override":
            return f"override --set {self.name}"
        if self.source == "file":
            return f"file {self.name}"
        return self.source

    def to_dict(self) -> dict:
        return {"source": self.source, "name": self.name} if self.name else {"source": self.source}


DEFAULT = Origin("default")


@dataclass
class Composed:
    """A spec with `extends` merged, overrides applied and variables interpolated, not yet
    validated (Session.compose). spec: the composed spec. origins: leaf JSON path -> its
    Origin. needs: dotted field -> (what, preset) for a preset's unmet needs.
    origin(path): one leaf's Origin (a schema default when no layer set it)."""
    spec: dict                                             # not yet validated
    origins: dict[str, Origin] = field(default_factory=dict)  # leaf JSON path -> origin
    needs: dict[str, tuple[str, str]] = field(default_factory=dict)  # dotted -> (what, preset)

    def origin(self, path: str) -> Origin:
        return self.origins.get(path, DEFAULT)


NEED_ALTERNATIVES = {"path": ("paths", "text")}   # a corpus given another way meets a need for its path


def _need_met(spec: dict, dotted: str) -> bool:
    keys = dotted.split(".")
    if get_path(spec, keys) is not None:
        return True
    parent = get_path(spec, keys[:-1]) if len(keys) > 1 else spec
    return isinstance(parent, dict) and any(parent.get(k) is not None
                                            for k in NEED_ALTERNATIVES.get(keys[-1], ()))


def compose(spec: dict, registry: Registry, overrides: Iterable[str] = (),
            origin: Origin = Origin("python"), base_dir: Path | None = None,
            env: dict | None = None, placeholders: bool = False,
            interpolating: bool = True) -> Composed:
    """Layers 1-4 above. placeholders: fill a preset's unmet `needs` with a stand-in
    string instead of refusing (how presets are validated when registered).
    interpolating=False stops before layer 4 (a sweep sets variables per variant first).
    `--set extends=NAME` is applied to the spec before its chain is expanded."""
    overrides = list(overrides)
    rebase = [o for o in overrides if parse_override(o)[0] == ["extends"]]
    if rebase:
        spec = {**spec, "extends": parse_override(rebase[-1])[1]}
        overrides = [o for o in overrides if o not in rebase]
    layers = _expand(spec, registry, origin, base_dir or Path.cwd(), [])
    merged = apply_overrides(layers.spec, overrides)
    origins = dict(layers.origins)
    for text in overrides:
        keys, value = parse_override(text)
        prefix = "$" + "".join(_step(k) for k in keys)
        origins = {p: o for p, o in origins.items() if not _under(p, prefix)}
        origins.update({p: Origin("override", text) for p in leaf_paths(value, prefix)})
    problems = []
    for dotted, (what, preset) in layers.needs.items():
        if not _need_met(merged, dotted):
            if placeholders:
                merged = apply_overrides(merged, [f"{dotted}=<{dotted}>"])
            else:
                problems.append(f"$.{dotted}: preset {preset!r} needs {what}: give it with "
                                f"--set {dotted}=VALUE (or in a spec that extends {preset!r})")
    if problems:
        raise SpecError(problems)
    merged.pop("extends", None)            # only --set can bring one back this late
    drop_ignored_defaults(merged, registry)
    try:
        spec = interpolate(merged, env) if interpolating else merged
    except RecursionError:   # variables inside variables, or an env value, nested too deep
        raise SpecError([f"$: with its variables interpolated, the spec nests objects and "
                         f"arrays more than {MAX_NESTING} levels deep"]) from None
    check_nesting(spec)      # (spec.py) an interpolated value may nest deeper than its source
    return Composed(spec, origins, layers.needs)


def compose_preset(name: str, registry: Registry) -> Composed:
    """A registered preset composed with placeholders for what it needs, then validated."""
    from .spec import resolve
    composed = compose({"extends": name}, registry, placeholders=True, env=_AnyEnv())
    resolve(composed.spec, registry)
    return composed


class _AnyEnv(dict):
    """The environment a preset is checked in when registered: every variable is set (to
    a stand-in), since the user's environment at run time is what counts."""

    def get(self, name, default=None):
        return f"<env:{name}>"


# -- layers -----------------------------------------------------------------------------------
def _expand(spec: Any, registry: Registry, origin: Origin, base_dir: Path,
            chain: list[str]) -> Composed:
    if not isinstance(spec, dict):
        raise SpecError([f"$: the spec must be a JSON object, not {type(spec).__name__}"])
    check_nesting(spec)      # (spec.py) before any recursive walk of a Python dict or preset
    own = strip_comments(spec)
    own.pop(SCHEMA_KEY, None)   # an editor's link, relative to where the file was
    ref = own.pop("extends", None)
    if origin.source in ("preset", "file"):
        chain = chain + [_label(origin)]
    if len(chain) > MAX_DEPTH:
        raise SpecError([f"$.extends: a chain of more than {MAX_DEPTH} specs: "
                         f"{' -> '.join(chain[:3])} -> ..."])
    base = Composed({}) if ref is None else _parent(ref, registry, base_dir, chain, origin)
    replaced = replaced_paths(base.spec, own, "$")
    kept = {p: o for p, o in base.origins.items() if not any(_under(p, r) for r in replaced)}
    return Composed(deep_merge(base.spec, own),
                    {**kept, **{p: origin for p in leaf_paths(own, "$")}}, dict(base.needs))


def _parent(ref: Any, registry: Registry, base_dir: Path, chain: list[str],
            child: Origin) -> Composed:
    if not isinstance(ref, str) or not ref:
        raise SpecError([f"$.extends: must be a preset name or a spec file path, not {ref!r}"])
    if child.source == "preset" and is_path(ref, base_dir) and not Path(ref).is_absolute():
        raise SpecError([f"$.extends: preset {child.name!r} extends the relative path {ref!r}; "
                         f"a preset may extend other presets or absolute paths only"])
    if is_path(ref, base_dir):
        try:
            path = (base_dir / ref).resolve()
        except (OSError, ValueError, UnicodeError) as e:   # NUL, a lone surrogate, ...
            raise SpecError([f"$.extends: {ref!r} cannot name a file: {e}"]) from None
        origin = Origin("file", str(path))
        _check_cycle(chain, origin)
        try:
            spec = load_spec_file(path)
        except SpecError as e:   # a file that is not there is the extending spec's problem
            if e.source is not None:
                raise
            raise SpecError([f"$.extends: {p}" for p in e.problems]) from None
        return _expand(spec, registry, origin, path.parent, chain)
    origin = Origin("preset", ref)
    _check_cycle(chain, origin)
    try:
        preset = registry.preset(ref)
    except UnknownComponentError as e:
        raise SpecError([f"$.extends: {e}"]) from None
    composed = _expand(preset.spec, registry, origin, Path.cwd(), chain)
    composed.needs.update({p: (what, ref) for p, what in preset.needs.items()})
    return composed


def is_path(ref: str, base_dir: Path) -> bool:
    """A reference is a file path when it looks like one (a separator, or .json) or a
    file of that name exists; otherwise it names a preset."""
    if "/" in ref or "\\" in ref or ref.endswith(".json"):
        return True
    try:
        return (base_dir / ref).is_file()
    except (OSError, ValueError):      # a name no file can have (NUL, too long): a preset's
        return False


def _label(origin: Origin) -> str:
    if origin.source == "file":        # one file, however it was named
        return f"file {Path(origin.name).resolve()}"
    return origin.describe() if origin.source == "preset" else origin.source


def _check_cycle(chain: list[str], origin: Origin) -> None:
    if _label(origin) in chain:
        raise SpecError([f"$.extends: a cycle: {' -> '.join(chain + [_label(origin)])}"])


# -- trees ------------------------------------------------------------------------------------
def deep_merge(base: Any, top: Any) -> Any:
    """Objects merge key by key, recursively; anything else in `top` replaces `base`. A
    component whose "type" changes is replaced whole: one type's options rarely fit
    another (extending a synthetic-data preset with {"type": "text", "path": ...} must
    not keep the synthetic dataset's num_chars)."""
    if isinstance(base, dict) and isinstance(top, dict) and not _retyped(base, top):
        out = copy.deepcopy(base)
        for key, value in top.items():
            out[key] = deep_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(top)


def replaced_paths(base: Any, top: Any, prefix: str) -> list[str]:
    """Where deep_merge(base, top) replaces a subtree of `base` instead of merging into it."""
    if isinstance(base, dict) and isinstance(top, dict) and not _retyped(base, top):
        return [p for k, v in top.items() if k in base
                for p in replaced_paths(base[k], v, f"{prefix}.{k}")]
    return [prefix]


def _retyped(base: dict, top: dict) -> bool:
    return "type" in base and "type" in top and base["type"] != top["type"]


def strip_comments(node: Any) -> Any:
    """A copy without "$comment" keys, at any depth."""
    if isinstance(node, dict):
        return {k: strip_comments(v) for k, v in node.items() if k != COMMENT_KEY}
    if isinstance(node, list):
        return [strip_comments(v) for v in node]
    return node


def leaf_paths(node: Any, prefix: str) -> list[str]:
    """JSON paths of every leaf (non-empty objects and arrays are walked into)."""
    return [path for path, _ in leaves(node, prefix)]


def leaves(node: Any, prefix: str = "$") -> list[tuple[str, Any]]:
    """(JSON path, value) for every leaf, in document order."""
    if isinstance(node, dict) and node:
        return [x for k, v in node.items() for x in leaves(v, f"{prefix}.{k}")]
    if isinstance(node, list) and node:
        return [x for i, v in enumerate(node) for x in leaves(v, f"{prefix}[{i}]")]
    return [(prefix, node)]


def _step(key: str) -> str:
    return f"[{key}]" if key.isdigit() else f".{key}"


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def get_path(node: Any, keys: list[str]) -> Any:
    """The value at dotted `keys` (list items by index), or None."""
    for key in keys:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node
