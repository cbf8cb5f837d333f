"""Greedy and sampling strategies: temperature, then top-k, then top-p, then a draw.

The order is fixed and documented: logits are divided by the temperature, the k most
likely tokens are kept, then the smallest set whose probability reaches p, and a token
is drawn from what is left. Temperature 0 means greedy.
"""
from __future__ import annotations

import torch

from seqgen import Strategy


class Greedy(Strategy):
    """argmax: the single most likely token. Deterministic."""

    def choose(self, logits, generator=None):
        return logits.argmax(dim=-1)

    def describe(self):
        return "greedy"


class Sample(Strategy):
    stochastic = True

    def __init__(self, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None):
        self.temperature = float(temperature)
        self.top_k = top_k
        self.top_p = top_p

    def choose(self, logits, generator=None):
        if self.temperature == 0:
            return logits.argmax(dim=-1)
        logits = logits.float() / self.temperature             # [B, V]
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            kth = logits.topk(self.top_k, dim=-1).values[:, -1:]  # [B, 1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p is not None and self.top_p < 1.0:
            logits = _nucleus(logits, self.top_p)
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    def warnings(self):
        notes = []
        if self.temperature == 0 and (self.top_k is not None or self.top_p is not None):
            notes.append("temperature 0 is greedy decoding: top_k and top_p have no effect")
        if self.top_k == 1 and self.top_p is not None:
            notes.append("top_k 1 keeps a single token: top_p has no effect")
        return notes

    def describe(self):
        parts = [f"temperature={self.temperature:g}"]
        if self.top_k is not None:
            parts.append(f"top_k={self.top_k}")
        if self.top_p is not None:
            parts.append(f"top_p={self.top_p:g}")
        return "sample(" + ", ".join(parts) + ")"


def _nucleus(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability sums to at least p. [B, V]"""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop = cum - sorted_logits.softmax(dim=-1) >= p      # mass before this token already >= p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)
