"""Finding and loading plugins into one session's plugin manager.

Built-in plugins are named here as module strings (like pytest's default_plugins) and
registered exactly as entry-point plugins are: imported, then handed to pluggy. Each
third-party entry point in the `seqgen` group loads on its own. Whatever goes wrong
inside one plugin is that plugin's load failure, recorded with its name, distribution
and cause, and never takes the other plugins down (unless `strict`):

- an import error, or a hookimpl whose name matches no hookspec (a typo);
- a `register_*` hook that raises: everything it registered in that call is dropped;
- an invalid registration (name, factory, schema, schema defaults, preset): that one
  component is dropped;
- a name another plugin already holds: built-ins register first and keep theirs;
  `register(..., replaces=NAME)` is the only way to take a name over on purpose;
- two distributions declaring the same entry-point name: both load, addressed as
  `distribution:entry-point`.

SEQGEN_PLUGINS limits third-party loading: unset loads all, "" loads none, and a comma
list loads only the entry points it names (by entry-point name, distribution name, or
`distribution:entry-point`). SEQGEN_DISABLE_PLUGINS is a denylist of the same form.
Names that match nothing are warned about. Built-ins always load.

Each failure and note is logged as a WARNING on the "seqgen.plugins" logger when it
happens (with the traceback, when there is one, at DEBUG), and kept in the loader's
`failures` and `warnings` (Session.load_failures, Session.warnings). With `strict`, failures
are not logged: they become one PluginError once loading is done.
"""
from __future__ import annotations

import difflib
import importlib
import os
import re
import traceback
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Iterable

import pluggy

from . import __version__, hookspecs
from .components import KIND_TABLE
from .errors import PluginError
from .log import plugins_logger
from .registration import Registrar
from .registry import Registry

ENTRY_POINT_GROUP = "seqgen"
ENV_VAR = "SEQGEN_PLUGINS"
DENY_ENV_VAR = "SEQGEN_DISABLE_PLUGINS"

DEFAULT_PLUGINS = (
    "seqgen_plugins.cells",
    "seqgen_plugins.datasets",
    "seqgen_plugins.samplers",
    "seqgen_plugins.strategies",
    "seqgen_plugins.processors",
    "seqgen_plugins.optimizers",
    "seqgen_plugins.schedules",
    "seqgen_plugins.loggers",
    "seqgen_plugins.attentions",
    "seqgen_plugins.presets",
)
HOOK_NAMES = sorted(n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "seqgen_spec"))


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that failed to load, or had something it registered refused
    (Session.load_failures, and the "failures" of `seqgen plugins`).

    name:         the plugin (entry-point name, module name, or distribution:entry-point)
    distribution: the installed distribution that declares it ("direct" for objects
                  given to Session(plugins=...))
    error:        the cause, one line
    detail:       the formatted traceback, when there is one (shown with --debug)
    partial:      True when the plugin loaded but something it registered was refused
    cause:        the exception behind it, if any (not compared, not shown)
    """
    name: str
    distribution: str
    error: str
    detail: str = ""
    partial: bool = False
    cause: BaseException | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """One line: which plugin, from which distribution, and what went wrong."""
        what = "" if self.partial else " failed to load"
        return f"plugin {self.name!r} from distribution {self.distribution!r}{what}: {self.error}"


@dataclass(frozen=True)
class PluginInfo:
    """A plugin that loaded: its name, origin ("builtin", a distribution name, or
    "direct"), module, distribution and version, and the hooks it implements."""
    name: str
    origin: str          # "builtin", a distribution name, or "direct"
    module: str
    distribution: str = ""
    version: str = ""
    hooks: tuple[str, ...] = ()


def env_names(var: str, env: dict | None = None) -> set[str] | None:
    """The comma-separated names in an environment variable, or None when it is unset."""
    value = (os.environ if env is None else env).get(var)
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def allowed_entry_points(env: dict | None = None) -> set[str] | None:
    """Names allowed by SEQGEN_PLUGINS, or None for 'all'."""
    return env_names(ENV_VAR, env)


class PluginLoader:
    """Builds one pluggy manager and one Registry from built-ins, entry points and objects."""

    def __init__(self, plugins: Iterable[Any] = (), entry_points: bool = True,
                 strict: bool = False, builtins: bool = True, env: dict | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[LoadFailure] = []
        self.warnings: list[str] = []
        self.infos: list[PluginInfo] = []
        self.strict = strict
        if builtins:
            for module_name in DEFAULT_PLUGINS:
                self._add(importlib.import_module(module_name), module_name, "builtin",
                          "seqgen", __version__)
        if entry_points:
            self._load_entry_points(env)
        for i, obj in enumerate(plugins):
            name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{i}"
            self._add(obj, name, "direct", "direct", "")

    # -- failures -------------------------------------------------------------------------
    def fail(self, failure: LoadFailure, cause: BaseException | None = None) -> None:
        """Record a plugin's failure (strict loading raises them all once loading is done)."""
        failure = replace(failure, cause=cause)
        self.failures.append(failure)
        if self.strict:          # not a warning: one error once loading is done
            return
        plugins_logger.warning("%s", failure.describe(), extra={"seqgen_failure": failure})
        if failure.detail:
            plugins_logger.debug("traceback of plugin %r's failure:\n%s", failure.name,
                                 failure.detail.rstrip(), extra={"seqgen_failure": failure})

    def warn(self, note: str) -> None:
        """Record a note about plugin selection, and log it."""
        self.warnings.append(note)
        plugins_logger.warning("%s", note)

    def info(self, name: str) -> PluginInfo:
        return next(i for i in self.infos if i.name == name)

    # -- registering plugin objects ---------------------------------------------------------
    def _add(self, obj: Any, name: str, origin: str, dist: str, version: str) -> None:
        try:
            self.pm.register(obj, name=name)
        except (ValueError, pluggy.PluginValidationError) as e:
            one_line = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
            self.fail(LoadFailure(name, dist, f"invalid plugin: {one_line}"), e)
            return
        unknown = [hc.name for hc in self.pm.get_hookcallers(obj) or [] if not hc.has_spec()]
        if unknown:
            self.pm.unregister(obj)
            self.fail(LoadFailure(name, dist, "; ".join(_unknown_hook(h) for h in unknown)))
            return
        hooks = tuple(sorted(hc.name for hc in self.pm.get_hookcallers(obj) or []))
        if not hooks and origin != "builtin":
            self.pm.unregister(obj)
            self.fail(LoadFailure(name, dist, f"{type(obj).__name__} {str(obj)[:60]!r} implements "
                                              f"no seqgen hook (is the entry point right?)"))
            return
        module = getattr(obj, "__name__", type(obj).__module__)
        self.infos.append(PluginInfo(name, origin, module, dist, version, hooks))

    def _load_entry_points(self, env: dict | None) -> None:
        allowed, denied = env_names(ENV_VAR, env), env_names(DENY_ENV_VAR, env)
        points = _distinct(metadata.entry_points(group=ENTRY_POINT_GROUP))
        dists_of: dict[str, set[str]] = {}
        for ep, dist in points:
            dists_of.setdefault(ep.name, set()).add(dist)
        for var, names in ((ENV_VAR, allowed), (DENY_ENV_VAR, denied)):
            for n in sorted(names or ()):
                if not any(_named({n}, _addresses(ep, dist)) for ep, dist in points):
                    self.warn(f"{var} names {n!r}, which matches no installed "
                              f"plugin (entry point or distribution)")
        for ep, dist in points:
            addresses = _addresses(ep, dist)
            if allowed is not None and not _named(allowed, addresses):
                continue
            if denied and _named(denied, addresses):
                continue
            name = ep.name
            if len(dists_of[ep.name]) > 1:
                name = f"{dist}:{ep.name}"
                others = ", ".join(sorted(dists_of[ep.name] - {dist}))
                self.fail(LoadFailure(name, dist, f"entry-point name {ep.name!r} is also "
                                      f"declared by {others}; this one loads as {name!r}",
                                      partial=True))
            version = getattr(ep.dist, "version", "") or ""
            try:
                obj = ep.load()
            except (Exception, SystemExit) as e:  # any import-time failure is the plugin's
                self.fail(LoadFailure(name, dist, f"{type(e).__name__}: {e}",
                                      traceback.format_exc()), e)
                continue
            self._add(obj, name, dist, dist, version)

    # -- the registry -----------------------------------------------------------------------
    def build_registry(self) -> Registry:
        """Call every register_* hook, one plugin at a time so each registration knows
        its source; presets last, so they can be validated against every component."""
        registry = Registry()
        registrar = Registrar(registry, self)
        for kind in KIND_TABLE:
            self._call_each(kind.hook, lambda info: registrar.component_register(kind.name, info),
                            registrar)
        self._call_each("register_presets", registrar.preset_register, registrar)
        registrar.validate_presets()
        registry.load_failures = list(self.failures)
        if self.strict and self.failures:
            raise strict_error(self.failures)
        return registry

    def _call_each(self, hook_name: str, make_register, registrar: Registrar) -> None:
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():  # registration order
            info = self.info(self.pm.get_name(impl.plugin))
            register = make_register(info)
            try:
                impl.function(**{arg: register for arg in impl.argnames})
            except (Exception, SystemExit) as e:
                registrar.discard(info)
                self.fail(LoadFailure(info.name, info.distribution,
                                      f"{hook_name} raised {type(e).__name__}: {e}",
                                      traceback.format_exc()), e)
                continue
            registrar.commit(info)


def strict_error(failures: list[LoadFailure]) -> PluginError:
    """Every failure as one error, for strict loading (chained to the first cause)."""
    note = " (strict plugin loading is on)"
    if len(failures) == 1:
        error = PluginError(failures[0].describe() + note)
    else:
        lines = "\n".join(f"  {f.describe()}" for f in failures)
        error = PluginError(f"{len(failures)} plugin problems{note}:\n{lines}")
    error.__cause__ = next((f.cause for f in failures if f.cause is not None), None)
    return error


def _distinct(entry_points) -> list[tuple[Any, str]]:
    """(entry point, distribution name), sorted, without the duplicates a distribution
    found twice on sys.path produces."""
    seen, out = set(), []
    for ep in sorted(entry_points, key=lambda e: (e.name, e.dist.name if e.dist else "")):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        key = (ep.name, dist, getattr(ep, "value", ""))
        if key not in seen:
            seen.add(key)
            out.append((ep, dist))
    return out


def _addresses(ep, dist: str) -> set[str]:
    """The names SEQGEN_PLUGINS / SEQGEN_DISABLE_PLUGINS may use for an entry point
    (distribution names in their normalised form, so seqgen_x and Seqgen-X match)."""
    return {ep.name, canonical(dist), f"{canonical(dist)}:{ep.name}"}


def _named(names: set[str], addresses: set[str]) -> bool:
    """Does any of `names` (entry-point, distribution or dist:ep) address this plugin?"""
    for n in names:
        dist, sep, ep = n.partition(":")
        if n in addresses or (f"{canonical(dist)}{sep}{ep}" if sep else canonical(n)) in addresses:
            return True
    return False


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _unknown_hook(name: str) -> str:
    close = difflib.get_close_matches(name, HOOK_NAMES, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else f" Hooks: {', '.join(HOOK_NAMES)}."
    return f"implements {name!r}, which is not a seqgen hook.{hint}"
