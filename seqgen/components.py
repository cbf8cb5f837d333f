"""A registered component: what a plugin hands to `register(...)`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

# The four kinds of component, singular, as used in messages and `seqgen plugins`.
KINDS = ("cell", "dataset", "sampler", "strategy")
PLURAL = {"cell": "cells", "dataset": "datasets", "sampler": "samplers", "strategy": "strategies"}


@dataclass(frozen=True)
class Component:
    """One named implementation of a kind.

    factory: builds the component from its options (the spec object minus "type").
             cell:     factory(input_size: int, **options) -> seqgen.Cell
             dataset:  factory(**options) -> seqgen.Dataset
             sampler:  factory(split, *, seed, rank, world_size, **options) -> seqgen.Sampler
             strategy: factory(**options) -> seqgen.Strategy
    schema:  JSON Schema (Draft 2020-12) of the options object, without "type"; seqgen
             adds "type" and forbids unknown keys unless the schema sets
             additionalProperties itself.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    schema: dict
    description: str
    plugin: str = ""        # name of the plugin that registered it
    origin: str = ""        # module or distribution, for duplicate-name errors
    extra: dict = field(default_factory=dict, compare=False)  # e.g. {"data": "stream"}

    def build(self, options: dict, *args, **kwargs):
        opts = {k: v for k, v in options.items() if k != "type"}
        return self.factory(*args, **kwargs, **opts)
