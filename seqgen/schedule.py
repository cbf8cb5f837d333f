"""Learning-rate schedules as pure functions of the optimizer step.

A schedule maps (step, steps_per_epoch, total_steps) to a factor of the base learning
rate. Being a pure function of the step, it needs no state of its own to resume.

  constant:     1
  exponential:  gamma ** (epochs past start_epoch)   (char-rnn: 0.97 after epoch 10)
  step:         gamma ** (epoch // step_size)
  cosine:       linear warmup over warmup_steps, then cosine from 1 down to min_factor
"""
from __future__ import annotations

import math
from typing import Callable

Factor = Callable[[int], float]


def lr_factor(spec: dict, steps_per_epoch: int, total_steps: int) -> Factor:
    kind = spec["type"]
    if kind == "constant":
        return lambda step: 1.0
    if kind == "exponential":
        return lambda step: spec["gamma"] ** max(0, step // steps_per_epoch + 1 - spec["start_epoch"])
    if kind == "step":
        return lambda step: spec["gamma"] ** ((step // steps_per_epoch) // spec["step_size"])
    if kind == "cosine":
        warmup, floor = spec["warmup_steps"], spec["min_factor"]

        def cosine(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return cosine
    raise ValueError(f"unknown schedule {kind!r}")
