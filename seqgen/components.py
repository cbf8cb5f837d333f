"""Kinds of component, and a registered component: what a plugin hands to `register(...)`."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Kind:
    """One kind of component: its names in messages, its hook, and what a factory returns.

    returns: "module:Class" a factory's result must be an instance of (checked at first
             use, so a wrong type is named with its plugin), or "callable".
    """
    name: str
    plural: str
    hook: str
    returns: str

    def wrong_type(self, obj: Any) -> str | None:
        """None when `obj` is what this kind's factories must return, else what it is."""
        if self.returns == "callable":
            ok, wanted = callable(obj), "a callable"
        else:
            module, _, cls = self.returns.partition(":")
            expected = getattr(importlib.import_module(module), cls)
            ok, wanted = isinstance(obj, expected), f"a {module.split('.')[0]}.{cls}"
        return None if ok else f"{type(obj).__name__} {_short(obj)}, not {wanted}"


KIND_TABLE = (
    Kind("cell", "cells", "register_cells", "seqgen.cell:Cell"),
    Kind("dataset", "datasets", "register_datasets", "seqgen.data:Dataset"),
    Kind("sampler", "samplers", "register_samplers", "seqgen.batch:Sampler"),
    Kind("strategy", "strategies", "register_strategies", "seqgen.strategy:Strategy"),
    Kind("processor", "logits processors", "register_processors",
         "seqgen.processors:LogitsProcessor"),
    Kind("optimizer", "optimizers", "register_optimizers", "torch.optim:Optimizer"),
    Kind("schedule", "learning-rate schedules", "register_schedules", "callable"),
    Kind("logger", "event loggers", "register_loggers", "seqgen.loggers:Logger"),
    Kind("attention", "attention mechanisms", "register_attentions",
         "seqgen.attention:Attention"),
)
def _short(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."


KIND_BY_NAME = {k.name: k for k in KIND_TABLE}
# The kinds, singular, as used in specs' x-seqgen-kind, messages and `seqgen plugins`.
KINDS = tuple(KIND_BY_NAME)
PLURAL = {k.name: k.plural for k in KIND_TABLE}


@dataclass(frozen=True)
class Component:
    """One named implementation of a kind.

    factory: builds the component from its options (the spec object minus "type").
             cell:      factory(input_size: int, **options) -> seqgen.Cell
             dataset:   factory(**options) -> seqgen.Dataset
             sampler:   factory(split, *, seed, rank, world_size, **options) -> seqgen.Sampler
             strategy:  factory(**options) -> seqgen.Strategy
             processor: factory(**options) -> seqgen.LogitsProcessor
             optimizer: factory(params, **options) -> torch.optim.Optimizer
             schedule:  factory(*, steps_per_epoch, total_steps, **options) -> step -> factor
             logger:    factory(run_dir, **options) -> seqgen.Logger
             attention: factory(query_size, memory_size, **options) -> seqgen.Attention
             Options that are themselves components (a slot marked "x-seqgen-kind" in the
             schema, e.g. a strategy's list of processors) arrive already built.
    schema:  JSON Schema (Draft 2020-12) of the options object, without "type"; seqgen
             adds "type" and forbids unknown keys unless the schema sets
             additionalProperties itself.
    kind, name, description: what it is, its name in specs, and a one-line description.
    plugin:       the name of the plugin that registered it.
    origin:       "builtin", "direct" or the distribution, for messages.
    extra:        kind-specific facts, e.g. {"task": "lm"} for a dataset.
    distribution, version: the installed distribution that supplied it ("seqgen" for
                  built-ins) and its version.
    replaces:     the plugin whose component of this name it replaced on purpose, if any.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    schema: dict
    description: str
    plugin: str = ""        # name of the plugin that registered it
    origin: str = ""        # "builtin", "direct" or the distribution, for messages
    extra: dict = field(default_factory=dict, compare=False)  # e.g. {"task": "lm"}
    distribution: str = ""  # the installed distribution that supplied it ("seqgen": built-in)
    version: str = ""       # that distribution's version
    replaces: str | None = None  # "plugin" whose component of this name it replaced on purpose

    def build(self, options: dict, *args, **kwargs):
        opts = {k: v for k, v in options.items() if k != "type"}
        return self.factory(*args, **kwargs, **opts)

    def provenance(self) -> dict:
        """{kind, name, plugin, distribution, version}: what a checkpoint records."""
        return {"kind": self.kind, "name": self.name, "plugin": self.plugin,
                "distribution": self.distribution, "version": self.version}
