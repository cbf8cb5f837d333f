"""Events a run reports as it goes: the CLI prints them, plugins observe them (on_event)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Event:
    """kind: "start", "epoch_start", "step", "log", "eval", "epoch", "early_stop",
    "sample", "checkpoint", "interrupted", "generated", "plot", "end", "warning", and in
    `seqgen compare` "variant" and "variant_end". data: JSON-able details (step, loss,
    perplexity, text, path, ...).

    "step" (every optimizer step): step, loss (mean NLL per token; inf or nan when
    training diverged, sent before the TrainingError), tokens, grad_norm (the global
    gradient norm before clipping), clipped (whether clipping acted: grad_norm >
    train.clip_norm), lr (the learning rate of the step) and teacher_ratio.
    "log" (every train.log_every steps): epoch, step, loss, perplexity, lr,
    tokens_per_second over the window since the last, grad_norm_mean, grad_norm_max,
    clipped_fraction and teacher_ratio."""

    kind: str
    data: dict = field(default_factory=dict)


Emit = Callable[[Event], None]


def ignore(event: Event) -> None:
    """An Emit that drops everything (the default for embedded use)."""


def json_line(data) -> str:
    """`data` as one line of valid JSON. JSON has no infinity or NaN (json.dumps would
    write the invalid `Infinity`), so a non-finite float, at any depth, is written as the
    string "inf", "-inf" or "nan"; `float()` reads each back. Used for metrics.jsonl and
    the jsonl logger, whose lines must parse even when training overflowed."""
    def finite(value):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value
    return json.dumps(finite(data), ensure_ascii=False, allow_nan=False)
