"""Events a run reports as it goes: the CLI prints them, plugins observe them (on_event)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Event:
    """kind: "start", "epoch_start", "step", "log", "eval", "epoch", "early_stop",
    "sample", "checkpoint", "interrupted", "generated", "plot", "end", "warning", and in
    `seqgen compare` "variant" and "variant_end". data: JSON-able details (step, loss,
    perplexity, text, path, ...)."""

    kind: str
    data: dict = field(default_factory=dict)


Emit = Callable[[Event], None]


def ignore(event: Event) -> None:
    """An Emit that drops everything (the default for embedded use)."""
