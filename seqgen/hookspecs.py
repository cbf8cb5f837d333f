"""The hooks a seqgen plugin can implement.

A plugin is a module or object with functions decorated by `seqgen.hookimpl` whose names
match the specs below. Built-in plugins (the `seqgen_plugins` package) and third-party
plugins (the `seqgen` entry-point group) are registered the same way, into a fresh
plugin manager per `Session`; nothing is loaded at import time.

Each `register_*` hook is called once per session, when the session builds its
registry, with a `register` callback:

    register(name, factory, schema=None, description="", **extra)

`name` must be unique within its kind across all plugins; a duplicate is an error naming
both plugins. `schema` is the JSON Schema of the component's options. Return values are
ignored: results combine through the callback, so every plugin's registrations are kept.
"""
from __future__ import annotations

import pluggy

PROJECT = "seqgen"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_cells(register):
    """Register recurrent cells.

    Called once per session while its registry is built. `register(name, factory,
    schema, description)` adds one cell; `factory(input_size, **options)` must return a
    `seqgen.Cell`. Every implementation is called; return value ignored.
    """


@hookspec
def register_datasets(register):
    """Register datasets.

    Called once per session while its registry is built. `factory(**options)` must
    return a `seqgen.Dataset`. Every implementation is called; return value ignored.
    """


@hookspec
def register_samplers(register):
    """Register batch samplers.

    Called once per session while its registry is built. `factory(split, *, seed, rank,
    world_size, **options)` must return a `seqgen.Sampler`; pass `accepts="stream"` or
    `accepts="sequences"` (or a tuple) to `register` to say which split shape it takes.
    Every implementation is called; return value ignored.
    """


@hookspec
def register_strategies(register):
    """Register decoding strategies (used for generation and to feed inputs in training).

    Called once per session while its registry is built. `factory(**options)` must
    return a `seqgen.Strategy`. Every implementation is called; return value ignored.
    """


@hookspec
def on_event(event, session):
    """Observe a run: called for every `seqgen.Event` (start, epoch end, eval, sample,
    checkpoint, end) as it happens, with the session that runs it. For loggers,
    dashboards and early-stopping plugins. Every implementation is called in
    registration order; return values are ignored. Exceptions propagate and stop the run.
    """
