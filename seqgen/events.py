"""Events a run reports as it goes: the CLI prints them, plugins observe them (on_event)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Event:
    """kind: "start", "log", "eval", "epoch", "sample", "checkpoint", "generated", "end",
    "warning". data: JSON-able details (step, loss, perplexity, text, path, ...)."""

    kind: str
    data: dict = field(default_factory=dict)


Emit = Callable[[Event], None]


def ignore(event: Event) -> None:
    """An Emit that drops everything (the default for embedded use)."""
