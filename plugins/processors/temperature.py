"""Temperature: logits / t, sharper below 1, flatter above; 0 keeps the argmax alone."""
from __future__ import annotations

import torch

from seqgen import LogitsProcessor


class Temperature(LogitsProcessor):
    def __init__(self, temperature: float = 0.8):
        self.temperature = float(temperature)
        self.greedy = self.temperature == 0

    def __call__(self, logits, history=None):
        if self.greedy:    # the limit t -> 0: all mass on the first most likely token
            best = logits.argmax(-1, keepdim=True)                        # [B, 1]
            return torch.full_like(logits, float("-inf")).scatter(-1, best,
                                                                  logits.gather(-1, best))
        return logits / self.temperature if self.temperature != 1.0 else logits

    def warnings(self):
        return [f"{self.describe()} has no effect"] if self.temperature == 1.0 else []

    def describe(self):
        return f"temperature({self.temperature:g})"
