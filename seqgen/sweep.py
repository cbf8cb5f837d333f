"""Expanding a spec's "sweep" into variant specs, for `seqgen compare`.

    "sweep": {"grid": {"model.cell.type": ["rnn", "gru"], "sampler.type": ["random", "sequential"]},
              "variants": [{"name": "lstm-2", "set": {"model.cell.type": "lstm",
                                                      "model.cell.num_layers": 2}}]}

The grid runs every combination, in nested-loop order: the first field varies slowest.
Listed variants follow the grid. Each variant is the spec with its fields set by the same
code as `--set` (seqgen.spec.apply_overrides), after the command's own --set overrides, so
a variant wins over --set on a field both change. With neither grid nor variants there is
one variant, the spec itself: a decoding comparison needs nothing more.

Every variant is resolved before anything runs, and every problem of every variant is
reported at once, each led by the variant's name.
"""
from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .spec import schema_problems, base_schema, fill_defaults

if TYPE_CHECKING:
    from .api import Session

UNSAFE = re.compile(r"[^A-Za-z0-9._,=+-]+")   # what may not appear in a directory name
MAX_NAME = 120


@dataclass(frozen=True)
class Variant:
    name: str          # also its directory name
    settings: dict     # dotted field -> value
    spec: dict         # resolved: the spec with `settings` applied, without "sweep"


@dataclass(frozen=True)
class Sweep:
    name: str              # the spec's name (the default output is runs/compare-<name>-<time>)
    fields: list[str]      # every field a variant sets, in first-seen order (report columns)
    sample_tokens: int
    variants: list[Variant]

    def manifest(self) -> dict:
        """What `compare --report-only` needs besides the run directories (compare.json)."""
        return {"name": self.name, "fields": self.fields, "sample_tokens": self.sample_tokens,
                "variants": [{"name": v.name, "set": v.settings} for v in self.variants]}


def expand(session: "Session", spec: dict, sweep: dict | None = None,
           source: str | None = None) -> Sweep:
    """The variants of `spec` (its --set overrides already applied), each resolved.
    `sweep` replaces the spec's own section (--sweep FILE). Raises one SpecError listing
    every problem of every variant."""
    spec = copy.deepcopy(spec)
    section = spec.pop("sweep", {}) if sweep is None else copy.deepcopy(sweep)
    schema = base_schema()
    fill_defaults(section, schema["properties"]["sweep"])
    problems = schema_problems(section, schema["properties"]["sweep"], "$.sweep")
    if problems:
        raise SpecError(problems, source=source)
    base_name = _safe(str(spec.get("name", schema["properties"]["name"]["default"])))

    listed = [(v.get("name"), v["set"]) for v in section.get("variants", [])]
    variants, seen = [], {}
    for i, (given, values) in enumerate(_grid(section.get("grid", {})) + listed or [(None, {})]):
        name = given or (_safe(_name(values)) if values else base_name)
        if UNSAFE.search(name) or name.startswith("."):
            problems.append(f"{name}: not usable as a directory name; use letters, digits "
                            f"and . _ , = + - (and no leading '.')")
        elif name in seen:
            problems.append(f"{name}: variants {seen[name] + 1} and {i + 1} have the same "
                            f"name; name them in sweep.variants")
        else:
            seen[name] = i
            try:   # "key=<json>" round-trips every value exactly through --set's parser
                resolved = session.resolve(spec, [f"{k}={json.dumps(v)}" for k, v in values.items()])
            except SpecError as e:
                problems += [f"{name}: {p}" for p in e.problems]
                continue
            if values:   # re-running OUT/<variant>/spec.json with `seqgen run` names it
                resolved["name"] = f"{resolved['name']}-{name}"
            variants.append(Variant(name, values, resolved))
    if problems:
        raise SpecError(problems, source=source)
    fields = list(dict.fromkeys(k for v in variants for k in v.settings))
    return Sweep(base_name, fields, section["sample_tokens"], variants)


def _grid(grid: dict) -> list[tuple[None, dict]]:
    if not grid:
        return []
    keys = list(grid)
    return [(None, dict(zip(keys, combo))) for combo in itertools.product(*grid.values())]


def _name(values: dict) -> str:
    """"cell=gru,sampler=random": each field by its last part ("model.cell.type" -> "cell",
    since "type" says nothing), by its whole path where two fields would share a label."""
    labels = {k: k.split(".")[-2] if k.endswith(".type") else k.split(".")[-1]
              for k in values}
    clash = {label for label in labels.values() if list(labels.values()).count(label) > 1}
    return ",".join(f"{k if labels[k] in clash else labels[k]}={_text(v)}"
                    for k, v in values.items())


def _safe(name: str) -> str:
    """A directory name: no separators, nothing hidden, not too long."""
    return UNSAFE.sub("-", name).strip(".-")[:MAX_NAME] or "variant"


def _text(value: Any) -> str:
    """A value in a name: {"type": "top-k", "k": 3} -> "top-k k=3", lists joined by "+"."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "+".join(_text(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_text(v) if k == "type" else f"{k}={_text(v)}" for k, v in value.items())
    return json.dumps(value)
