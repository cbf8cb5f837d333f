"""Reading specs that earlier versions of seqgen wrote.

Before optimizers and schedules were registry kinds, `train.optimizer` and
`train.schedule` had one shared schema, so every resolved spec (each run's spec.json, each
checkpoint) carries every option with its default, including those its type ignored:
adam's `momentum: 0`, a constant schedule's `gamma: 0.97`, ... Each type now takes only its
own options. Those ignored keys are dropped when they still hold the old default, which
changes nothing the run did; any other value is left for validation to refuse.
"""
from __future__ import annotations

from typing import Any

from .registry import Registry

# option -> the default every resolved spec of seqgen 0.1 holds
OLD_DEFAULTS = {
    "optimizer": {"momentum": 0},
    "schedule": {"gamma": 0.97, "start_epoch": 10, "step_size": 10, "warmup_steps": 0,
                 "min_factor": 0.0},
}


def drop_ignored_defaults(spec: dict, registry: Registry) -> None:
    """In place: remove old-default options the chosen built-in type does not take."""
    train = spec.get("train")
    if not isinstance(train, dict):
        return
    for kind, defaults in OLD_DEFAULTS.items():
        obj: Any = train.get(kind)
        if not isinstance(obj, dict) or not registry.has(kind, str(obj.get("type"))):
            continue
        component = registry.get(kind, obj["type"])
        if component.distribution != "seqgen":
            continue
        own = component.schema.get("properties", {})
        for key, old in defaults.items():
            if key in obj and key not in own and obj[key] == old:
                del obj[key]
