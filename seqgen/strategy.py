"""The contract every decoding-strategy plugin implements.

A strategy picks the next input token for each row of a batch. Generation uses it to
sample; the trainer uses it to decide what the model is fed at each step:

    ids = strategy.choose(logits, generator)     logits [B, V] float -> ids [B] int64

`teacher_ratio(epoch)` is the probability that training feeds the reference token instead
of the chosen one: 1.0 is pure teacher forcing (the trainer then uses the fast
whole-sequence path), 0.0 is free running. Decoding strategies default to 0.0.
"""
from __future__ import annotations

import torch


class Strategy:
    #: True when `choose` draws random numbers (so a generator/seed matters).
    stochastic: bool = False

    def choose(self, logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def teacher_ratio(self, epoch: int) -> float:
        return 0.0

    def warnings(self) -> list[str]:
        """Options that have no effect in this combination (shown to the user, not fatal)."""
        return []

    def describe(self) -> str:
        return type(self).__name__
