"""Variables and environment references inside a spec's strings.

    "${vars.x}"               the value of vars.x; typed when it is the whole string
                              ("${vars.layers}" -> 2), as text inside a longer one
    "${env:NAME}"             an environment variable (an error when unset); as a whole
                              string it is parsed like a --set value (JSON, else text)
    "${env:NAME:-default}"    ... or `default` when NAME is unset
    "$${"                     a literal "${"

Variables may refer to other variables and to the environment; a cycle is an error
naming it. A resolved spec is saved with every "${" escaped (`escape`), so running the
saved file again gives the same values. Every problem is reported at once, led by the JSON path of the string.
"""
from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

from .errors import SpecError

REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|(\$\{)")   # escape | reference | unclosed
_MISSING = object()


def interpolate(spec: dict, env: dict | None = None) -> dict:
    """A copy of `spec` with every reference replaced. Raises SpecError listing all problems."""
    if not isinstance(spec.get("vars", {}), dict):
        raise SpecError([f"$.vars: must be an object of variables, not "
                         f"{type(spec['vars']).__name__}"])
    resolver = _Resolver(spec.get("vars", {}), os.environ if env is None else env)
    out = resolver.walk(spec, "$")
    if resolver.problems:  # a variable used twice reports its own problem once
        raise SpecError(list(dict.fromkeys(resolver.problems)))
    return out


def escape(node: Any) -> Any:
    """A copy in which every "${" is written "$${", so that interpolating it again gives
    `node` back: how a resolved spec is saved (its values may hold a literal "${")."""
    if isinstance(node, str):
        return node.replace("${", "$${")
    if isinstance(node, dict):
        return {k: escape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [escape(v) for v in node]
    return node


def has_references(node: Any) -> bool:
    if isinstance(node, str):
        return REFERENCE.search(node) is not None
    if isinstance(node, dict):
        return any(has_references(v) for v in node.values())
    if isinstance(node, list):
        return any(has_references(v) for v in node)
    return False


class _Resolver:
    def __init__(self, variables: Any, env):
        self.variables = variables if isinstance(variables, dict) else {}
        self.env = env
        self.problems: list[str] = []
        self.done: dict[str, Any] = {}      # "vars.a.b" -> resolved value
        self.active: list[str] = []         # variables being resolved (cycle detection)

    def walk(self, node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: self.walk(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str):
            return self.string(node, path)
        return node

    def string(self, text: str, path: str) -> Any:
        whole = REFERENCE.fullmatch(text)
        if whole and whole.group(1) is not None:
            return self.reference(whole.group(1), path, whole=True)

        def substitute(match: re.Match) -> str:
            if match.group(2) is not None:
                self.problems.append(f"{path}: {text!r} opens a ${{ reference it never closes "
                                     f"with }} (write $${{ for a literal ${{)")
                return match.group(0)
            if match.group(1) is None:
                return "${"                                  # the $${ escape
            value = self.reference(match.group(1), path, whole=False)
            return value if isinstance(value, str) else json.dumps(value)
        return REFERENCE.sub(substitute, text)

    def reference(self, expr: str, path: str, whole: bool) -> Any:
        expr = expr.strip()
        if expr.startswith("env:"):
            return self.env_value(expr[4:], path, whole)
        if expr.startswith("vars.") and len(expr) > 5:
            return self.variable(expr, path)
        self.problems.append(f"{path}: ${{{expr}}} is not a reference seqgen knows: use "
                             f"${{vars.NAME}}, ${{env:NAME}} or ${{env:NAME:-default}}")
        return ""

    def env_value(self, body: str, path: str, whole: bool) -> Any:
        name, sep, default = body.partition(":-")
        value = self.env.get(name.strip(), _MISSING)
        if value is _MISSING:
            if not sep:
                self.problems.append(f"{path}: environment variable {name.strip()} is not "
                                     f"set (give a default with ${{env:{name.strip()}:-VALUE}})")
                return ""
            value = default
        if not whole:
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value

    def variable(self, expr: str, path: str) -> Any:
        if expr in self.done:
            return copy.deepcopy(self.done[expr])
        if expr in self.active:
            cycle = " -> ".join(self.active[self.active.index(expr):] + [expr])
            self.problems.append(f"{path}: variables refer to each other in a cycle: {cycle}")
            return ""
        node: Any = self.variables
        for key in expr.split(".")[1:]:   # objects by key, lists by index (vars.x.0)
            if isinstance(node, list) and key.isdigit():
                node = node[int(key)] if int(key) < len(node) else _MISSING
            else:
                node = node.get(key, _MISSING) if isinstance(node, dict) else _MISSING
            if node is _MISSING:
                known = ", ".join(sorted(self.variables)) or "(none)"
                self.problems.append(f"{path}: ${{{expr}}}: no such variable (vars has: "
                                     f"{known})")
                return ""
        self.active.append(expr)
        value = self.walk(node, "$." + expr)
        self.active.pop()
        self.done[expr] = value
        return copy.deepcopy(value)
