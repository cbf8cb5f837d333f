"""The `register` callbacks plugins receive, and how their registrations are admitted.

A plugin's registrations in one hook call are staged, then committed together once the
call returns: a hook that raises loses everything it staged, an invalid registration
loses only itself. Problems become the plugin's load failures (see plugins.py); the
callbacks never raise, so a plugin's own code always runs to its end.
"""
from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from .components import Component
from .errors import PluginError, SeqgenError
from .registry import Preset, Registry
from .spec import component_schema, fill_defaults

if TYPE_CHECKING:
    from .plugins import PluginInfo, PluginLoader


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")   # component and preset names


class Registrar:
    def __init__(self, registry: Registry, loader: "PluginLoader"):
        self.registry, self.loader = registry, loader
        self.staged: list[Component | Preset] = []   # the current hook call's registrations
        self.problems: list[str] = []                 # and what was refused in it

    # -- callbacks --------------------------------------------------------------------------
    def component_register(self, kind: str, info: "PluginInfo"):
        def register(name: str, factory, schema: dict | None = None, description: str = "",
                     *, replaces: str | None = None, **extra) -> None:
            schema = {"type": "object", "properties": {}} if schema is None else schema
            component = Component(kind, name, factory, schema, str(description).strip(),
                                  info.name, info.origin, extra, info.distribution,
                                  info.version, replaces)
            problem = component_problem(component)
            if problem:
                self.problems.append(f"{kind} {name!r}: {problem}")
            else:
                self.staged.append(component)
        register.__qualname__ = "register"   # how a plugin's wrong call reads in its failure
        return register

    def preset_register(self, info: "PluginInfo"):
        def register(name: str, spec: dict, description: str = "", *,
                     needs: dict | None = None) -> None:
            needs = {} if needs is None else needs
            if not isinstance(name, str) or not NAME.fullmatch(name):
                self.problems.append(f"preset with an invalid name {str(name)[:40]!r}: up to "
                                     f"64 letters, digits and . _ - (starting with a letter "
                                     f"or digit)")
            elif not isinstance(spec, dict):
                self.problems.append(f"preset {name!r}: spec must be a dict, not "
                                     f"{type(spec).__name__}")
            elif not isinstance(needs, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in needs.items()):
                self.problems.append(f"preset {name!r}: needs must map dotted fields to "
                                     f"descriptions (str -> str)")
            else:
                self.staged.append(Preset(name, copy.deepcopy(spec), str(description).strip(),
                                          dict(needs), info.name, info.distribution,
                                          info.version))
        register.__qualname__ = "register"
        return register

    # -- after each call ----------------------------------------------------------------------
    def discard(self, info: "PluginInfo") -> None:
        self.staged, self.problems = [], []

    def commit(self, info: "PluginInfo") -> None:
        staged, problems = self.staged, self.problems
        self.staged, self.problems = [], []
        for item in staged:
            try:
                if isinstance(item, Preset):
                    self.registry.add_preset(item)
                else:
                    self._add_component(item)
            except PluginError as e:
                problems.append(str(e))
        for problem in problems:
            self._fail(info, problem)

    def _add_component(self, component: Component) -> None:
        if component.replaces is not None:
            if not self.registry.has(component.kind, component.replaces):
                raise PluginError(f"{component.kind} {component.name!r} replaces "
                                  f"{component.replaces!r}, but no plugin registered a "
                                  f"{component.kind} of that name")
            old = self.registry.get(component.kind, component.replaces)
            component = replace(component, replaces=f"{old.plugin} ({old.distribution})")
        self.registry.add(component)

    def validate_presets(self) -> None:
        """Check every preset as a spec, with placeholders for what it needs; an invalid
        one is removed and becomes its plugin's load failure."""
        from .compose import compose_preset
        invalid = []
        for preset in self.registry.presets():   # all checked before any is removed
            try:
                compose_preset(preset.name, self.registry)
            except SeqgenError as e:
                invalid.append((preset, str(e)))
            except Exception as e:   # e.g. values JSON cannot hold: still the preset's fault
                invalid.append((preset, f"{type(e).__name__}: {e}"))
        for preset, error in invalid:
            self.registry.remove_preset(preset.name)
            self._fail(self.loader.info(preset.plugin), f"preset {preset.name!r} is invalid: "
                                                        f"{error}")

    def _fail(self, info: "PluginInfo", problem: str) -> None:
        from .plugins import LoadFailure
        self.loader.fail(LoadFailure(info.name, info.distribution, problem, partial=True))


def component_problem(component: Component) -> str | None:
    """Why a registration cannot be admitted, or None."""
    name, schema = component.name, component.schema
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return (f"invalid name {str(name)[:40]!r}: up to 64 letters, digits and . _ - "
                f"(starting with a letter or digit)")
    if component.replaces is not None and component.replaces != name:
        return (f"replaces={component.replaces!r} must equal the name it registers "
                f"({name!r})")
    if not callable(component.factory):
        return "factory is not callable"
    if not isinstance(schema, dict):
        return "options schema must be a dict"
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        return f"options schema is not a valid JSON Schema: {e.message}"
    return defaults_problem(component)


def defaults_problem(component: Component) -> str | None:
    """The options made of the schema's own defaults must satisfy it (fields it requires
    without a default are the user's to give, so "required" does not count)."""
    schema = component_schema(component)
    instance: dict[str, Any] = {"type": component.name}
    try:
        fill_defaults(instance, schema)
        errors = [e for e in Draft202012Validator(schema).iter_errors(instance)
                  if e.validator != "required"]
    except Exception as e:  # a schema jsonschema accepts but cannot apply
        return f"options schema cannot be applied: {type(e).__name__}: {e}"
    if errors:
        e = errors[0]
        return (f"the defaults of its options schema break it: "
                f"${e.json_path[1:]}: {e.message}")
    return None
