"""Finding and loading plugins into one session's plugin manager.

Built-in plugins are named here as module strings (like pytest's default_plugins) and
registered exactly as entry-point plugins are: imported, then handed to pluggy. Each
third-party entry point in the `seqgen` group loads on its own; one that fails to import
is recorded (name, distribution, cause) and the rest keep working, unless `strict`.

SEQGEN_PLUGINS limits third-party loading: unset loads all, "" loads none, and a comma
list ("myplugin,other") loads only those entry-point names. Built-ins always load.
"""
from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Iterable

import pluggy
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from . import hookspecs
from .components import Component
from .errors import PluginError
from .registry import Registry

ENTRY_POINT_GROUP = "seqgen"
ENV_VAR = "SEQGEN_PLUGINS"

DEFAULT_PLUGINS = (
    "seqgen_plugins.cells",
    "seqgen_plugins.datasets",
    "seqgen_plugins.samplers",
    "seqgen_plugins.strategies",
)

REGISTER_HOOKS = {
    "cell": "register_cells",
    "dataset": "register_datasets",
    "sampler": "register_samplers",
    "strategy": "register_strategies",
}


@dataclass(frozen=True)
class LoadFailure:
    name: str           # entry-point (or module) name
    distribution: str   # the installed distribution that declares it
    error: str          # "ExceptionType: message"
    detail: str         # the formatted traceback, shown with --debug

    def describe(self) -> str:
        return f"plugin {self.name!r} from distribution {self.distribution!r} failed to load: {self.error}"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    origin: str          # "builtin", a distribution name, or "direct"
    module: str


def allowed_entry_points(env: dict | None = None) -> set[str] | None:
    """Names allowed by SEQGEN_PLUGINS, or None for 'all'."""
    value = (os.environ if env is None else env).get(ENV_VAR)
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


class PluginLoader:
    """Builds one pluggy manager and one Registry from built-ins, entry points and objects."""

    def __init__(self, plugins: Iterable[Any] = (), entry_points: bool = True,
                 strict: bool = False, builtins: bool = True, env: dict | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[LoadFailure] = []
        self.infos: list[PluginInfo] = []
        self.strict = strict
        if builtins:
            for module_name in DEFAULT_PLUGINS:
                self._add(importlib.import_module(module_name), module_name, "builtin")
        if entry_points:
            self._load_entry_points(allowed_entry_points(env))
        for i, obj in enumerate(plugins):
            name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{i}"
            self._add(obj, name, "direct")

    def _add(self, obj: Any, name: str, origin: str) -> None:
        try:
            self.pm.register(obj, name=name)
        except (ValueError, pluggy.PluginValidationError) as e:
            raise PluginError(f"plugin {name!r} ({origin}) is invalid: {e}") from e
        module = getattr(obj, "__name__", type(obj).__module__)
        self.infos.append(PluginInfo(name, origin, module))

    def _load_entry_points(self, allowed: set[str] | None) -> None:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if allowed is not None and ep.name not in allowed:
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown"
            try:
                obj = ep.load()
            except Exception as e:  # any import-time failure is the plugin's, not ours
                failure = LoadFailure(ep.name, dist, f"{type(e).__name__}: {e}",
                                      traceback.format_exc())
                if self.strict:
                    raise PluginError(failure.describe() + " (strict plugin loading is on)") from e
                self.failures.append(failure)
                continue
            self._add(obj, ep.name, dist)

    def build_registry(self) -> Registry:
        """Call every register_* hook, one plugin at a time so each component knows its source."""
        registry = Registry()
        registry.load_failures = list(self.failures)
        for kind, hook_name in REGISTER_HOOKS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():  # registration order
                plugin_name = self.pm.get_name(impl.plugin) or "?"
                origin = next((i.origin for i in self.infos if i.name == plugin_name), "?")
                register = _make_register(registry, kind, plugin_name, origin)
                try:
                    impl.function(**{arg: register for arg in impl.argnames})
                except PluginError:
                    raise
                except Exception as e:
                    raise PluginError(f"plugin {plugin_name!r} ({origin}) failed in "
                                      f"{hook_name}: {type(e).__name__}: {e}") from e
        return registry


def _make_register(registry: Registry, kind: str, plugin: str, origin: str):
    def register(name: str, factory, schema: dict | None = None, description: str = "", **extra):
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {kind} with an invalid name {name!r}")
        if not callable(factory):
            raise PluginError(f"plugin {plugin!r}: factory for {kind} {name!r} is not callable")
        schema = {"type": "object", "properties": {}} if schema is None else schema
        if not isinstance(schema, dict):
            raise PluginError(f"plugin {plugin!r}: schema for {kind} {name!r} must be a dict")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            raise PluginError(f"plugin {plugin!r}: options schema for {kind} {name!r} is not a "
                              f"valid JSON Schema: {e.message}") from e
        registry.add(Component(kind, name, factory, schema, description.strip(), plugin,
                               origin, extra))
    return register
