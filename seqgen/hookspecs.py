"""The hooks a seqgen plugin can implement.

A plugin is a module or object with functions decorated by `seqgen.hookimpl` whose names
match the specs below. Built-in plugins (the `seqgen_plugins` package) and third-party
plugins (the `seqgen` entry-point group) are registered the same way, into a fresh
plugin manager per `Session`; nothing is loaded at import time.

Each `register_*` hook is called once per session, one plugin at a time, when the
session builds its registry, with a `register` callback:

    register(name, factory, schema=None, description="", *, replaces=None, **extra)

- `name` must be unique within its kind. Built-ins register first and keep their names;
  a later plugin that registers a taken name loses that one component (a load failure
  naming both plugins), and its other components still load.
- `replaces="lstm"` is the only way to take over an existing name on purpose: `name`
  must equal it, and `seqgen plugins` shows what was replaced.
- `schema` is the JSON Schema (Draft 2020-12) of the component's options, without
  "type". It is checked when registered: it must be a valid schema, and the object made
  of its own defaults must satisfy it. A slot marked `"x-seqgen-kind": KIND` (or an
  array whose items are) holds components of that kind: they are validated against
  their own schemas and reach the factory already built.
- `description` is one line, shown by `seqgen plugins` and in `seqgen schema`.
- `**extra` are kind-specific facts the core reads (each hook lists its own).

If a hook raises, or registers something invalid, everything that plugin registered in
that call is dropped and the plugin is listed as a load failure (fatal only with
`--strict-plugins`); the other plugins are unaffected. Return values are ignored:
results combine through the callback, so every plugin's registrations are kept.
"""
from __future__ import annotations

import pluggy

PROJECT = "seqgen"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_cells(register):
    """Register recurrent cells.

    Called once per session while its registry is built. `factory(input_size, **options)`
    must return a `seqgen.Cell` (see its docstring for the contract; hold it to it with
    `seqgen.testing.check_cell`). No extras. Every implementation is called; return
    value ignored.
    """


@hookspec
def register_datasets(register):
    """Register datasets.

    Called once per session while its registry is built. `factory(**options)` must
    return a `seqgen.Dataset` (`seqgen.testing.check_dataset` checks it).
    Extra: `task="lm" | "lines" | "aligned"` declares the task the dataset gives before
    it is built, so a spec's sampler and cell are checked against it at validation.
    Every implementation is called; return value ignored.
    """


@hookspec
def register_samplers(register):
    """Register batch samplers.

    Called once per session while its registry is built. `factory(split, *, seed, rank,
    world_size, **options)` must return a `seqgen.Sampler` (`seqgen.testing.check_sampler`).
    Extra: `accepts="stream" | "sequences"` (or a tuple of both) says which split shape
    it batches; validation refuses a dataset of the other shape.
    Sharding rule: `batch_size` is the global batch. Rank r of world_size takes its own
    rows of every global batch, every rank yields the same number of batches per epoch,
    and with (rank=0, world_size=1) the sampler yields the whole global batch.
    Every implementation is called; return value ignored.
    """


@hookspec
def register_strategies(register):
    """Register decoding strategies (used for generation and to feed inputs in training).

    Called once per session while its registry is built. `factory(**options)` must
    return a `seqgen.Strategy` (`seqgen.testing.check_strategy`). A strategy built from
    logits processors takes them as a slot of processor components in its schema. No
    extras. Every implementation is called; return value ignored.
    """


@hookspec
def register_processors(register):
    """Register logits processors: the steps a sampling strategy stacks before its choice.

    Called once per session while its registry is built. `factory(**options)` must return
    a `seqgen.LogitsProcessor` (logits [B, V] -> logits [B, V]). A spec stacks them in
    order: `{"type": "sample", "processors": [{"type": "temperature", ...}, ...]}`.
    No extras. Every implementation is called; return value ignored.
    """


@hookspec
def register_optimizers(register):
    """Register optimizers (`train.optimizer`).

    Called once per session while its registry is built. `factory(params, **options)`
    must return a `torch.optim.Optimizer` over `params` (the model's parameters). The
    learning-rate schedule scales each param group's initial "lr". No extras. Every
    implementation is called; return value ignored.
    """


@hookspec
def register_schedules(register):
    """Register learning-rate schedules (`train.schedule`).

    Called once per session while its registry is built. `factory(*, steps_per_epoch,
    total_steps, **options)` must return a callable `step -> factor` (a float multiplying
    the base learning rate). It must be a pure function of the 0-based optimizer step, so
    a resumed run needs no schedule state. No extras. Every implementation is called;
    return value ignored.
    """


@hookspec
def register_loggers(register):
    """Register event loggers (`train.loggers`, a list).

    Called once per session while its registry is built. `factory(run_dir, **options)`
    must return a `seqgen.Logger`: it receives every `seqgen.Event` of the run, and is
    closed when the run ends. No extras. Every implementation is called; return value
    ignored.
    """


@hookspec
def register_attentions(register):
    """Register attention mechanisms for encoder-decoder models.

    Called once per session while its registry is built. `factory(query_size,
    memory_size, **options)` must return a `seqgen.Attention` (see its docstring;
    `seqgen.testing.check_attention` checks it). No extras. Every implementation is
    called; return value ignored.
    """


@hookspec
def register_presets(register):
    """Register presets: named, complete specs that `seqgen run NAME` runs and a spec's
    `"extends": NAME` starts from.

    Called once per session, after every component hook, so a preset may use any
    component. `register(name, spec, description="", *, needs=None)`: `spec` is a spec
    object (it may itself extend another preset); `needs` maps dotted fields the user
    must supply (e.g. {"dataset.path": "a text corpus"}) to what they are. Each preset is
    validated here, with placeholders for its `needs`; an invalid one is that plugin's
    load failure. Every implementation is called; return value ignored.
    """


@hookspec
def on_event(event, session):
    """Observe a run: called for every `seqgen.Event` (start, epoch end, eval, sample,
    checkpoint, end) as it happens, with the session that runs it. For loggers,
    dashboards and early-stopping plugins. Every implementation is called in
    registration order; return values are ignored. Exceptions propagate and stop the run.
    """
