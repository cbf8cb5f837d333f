"""The CTRL repetition penalty (Keskar et al. 2019): the one built-in that reads history."""
from __future__ import annotations

import torch

from seqgen import LogitsProcessor


class RepetitionPenalty(LogitsProcessor):
    """For tokens a row has already seen (prompt or output), positive logits are divided
    by `penalty` and negative ones multiplied, so penalty > 1 always lowers them."""

    needs_history = True

    def __init__(self, penalty: float = 1.2):
        self.penalty = float(penalty)

    def __call__(self, logits, history=None):
        scaled = torch.where(logits > 0, logits / self.penalty, logits * self.penalty)
        return torch.where(history.seen, scaled, logits)                  # [B, V]

    def warnings(self):
        return [f"{self.describe()} has no effect"] if self.penalty == 1.0 else []

    def describe(self):
        return f"repetition-penalty({self.penalty:g})"
