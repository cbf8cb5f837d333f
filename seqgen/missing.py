"""Naming the plugin a checkpoint needs when it is not loaded here, and how to get it.

A checkpoint records {kind, name, plugin, distribution, version} for every component of
its spec (checkpoint.py). When one of those it needs now (its cell; a strategy asked for
by name) is not registered, the message names the distribution and version to install,
or says that it is installed but did not load. Metadata is a stranger's text: only rows
of plain, package-name-shaped strings are believed, so nothing odd reaches a command line.
"""
from __future__ import annotations

import re
from importlib import metadata
from typing import TYPE_CHECKING, Any

from .components import PLURAL

if TYPE_CHECKING:
    from .api import Session

FIELDS = ("kind", "name", "plugin", "distribution", "version")
DISTRIBUTION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
VERSION = re.compile(r"[A-Za-z0-9.+!_-]{1,40}")


def believable(rows: Any) -> list[dict]:
    """The well-formed rows of a checkpoint's recorded components (others are ignored)."""
    if not isinstance(rows, list):
        return []
    return [r for r in rows if isinstance(r, dict)
            and all(isinstance(r.get(f), str) for f in FIELDS)]


def missing_message(session: "Session", rows: list[dict], kind: str, name: str) -> str:
    """Why `kind` `name` cannot be built here, and what to do about it."""
    row = next((r for r in rows if r["kind"] == kind and r["name"] == name), None)
    dist = row["distribution"] if row else ""
    if row is None or dist in ("direct", "unknown", "") or not DISTRIBUTION.fullmatch(dist):
        return (f"its {kind} {name!r} is not registered by any installed plugin ("
                f"{PLURAL[kind]} here: {', '.join(session.registry.names(kind)) or '(none)'}); "
                f"install the plugin that provides it")
    version = row["version"] if VERSION.fullmatch(row["version"]) else ""
    what = (f"its {kind} {name!r} comes from plugin {row['plugin']!r} of distribution "
            f"{dist!r}{' ' + version if version else ''}")
    if _installed(dist):
        return (f"{what}, which is installed but did not load here (it failed, or "
                f"SEQGEN_PLUGINS / SEQGEN_DISABLE_PLUGINS leave it out; see `seqgen plugins`)")
    return f"{what}, which is not installed here: pip install {dist}{'==' + version if version else ''}"


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True
