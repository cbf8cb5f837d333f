"""`seqgen init`: a complete starting spec, every field described, linked to its schema.

The spec is a preset resolved with every default filled, so nothing is hidden. JSON has no
comments, so each object gets a "$comment" object mapping its keys to their schema
descriptions (seqgen ignores "$comment" keys at any depth). What the preset needs from
the user is left as a "<required: ...>" placeholder and listed in the top "$comment".
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from .compose import COMMENT_KEY, compose, get_path
from .spec import KIND_KEY, base_schema, branch, component_schema, resolve

if TYPE_CHECKING:
    from .api import Session


def starting_spec(session: "Session", preset: str, overrides: Iterable[str] = (),
                  schema_link: str | None = None) -> dict:
    """The resolved preset with "$comment" descriptions (and "$schema" when given)."""
    registry = session.registry
    needs = registry.preset(preset).needs
    composed = compose({"extends": preset}, registry, overrides, placeholders=True)
    resolved = resolve(composed.spec, registry, source=f"preset {preset!r}")
    todo = []   # what the user must still fill in: left as a placeholder validation refuses
    for dotted, what in needs.items():
        if get_path(resolved, dotted.split(".")) == f"<{dotted}>":
            _set(resolved, dotted, f"<required: {what}>")
            todo.append(f"{dotted}: {what}")
    head = {"$schema": schema_link} if schema_link else {}
    head[COMMENT_KEY] = {"": f"seqgen spec from preset {preset!r}: "
                             f"{registry.preset(preset).description}"
                             + (f" Fill in before running: {'; '.join(todo)}." if todo else "")}
    described = _describe(resolved, base_schema(), session)
    head[COMMENT_KEY].update(described.pop(COMMENT_KEY, {}))
    return {**head, **described}


def _describe(node: Any, schema: dict, session: "Session") -> Any:
    """`node` with a "$comment" {key: description} first in every object."""
    if isinstance(node, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [_describe(v, items, session) for v in node]
    if not isinstance(node, dict):
        return node
    if KIND_KEY in schema and isinstance(node.get("type"), str):
        component = session.registry.get(schema[KIND_KEY], node["type"])
        schema = component_schema(component)
    props = branch(schema, node).get("properties", {})
    notes = {k: props[k]["description"] for k in node
             if isinstance(props.get(k), dict) and props[k].get("description")}
    body = {k: _describe(v, props.get(k, {}), session) for k, v in node.items()}
    return {COMMENT_KEY: notes, **body} if notes else body


def _set(spec: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
