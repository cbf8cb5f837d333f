"""Filters: keep some tokens of each row, set the others' logits to -inf.

top-k keeps a fixed number, min-p those close enough to the best, and top-p and
typical-p the shortest prefix of a ranking whose probability reaches p: top-p ranks by
probability, typical-p by how close each token's information is to the row's entropy.
"""
from __future__ import annotations

import math

import torch

from seqgen import LogitsProcessor

NO_EFFECT = "keeps every token: it has no effect"


class TopK(LogitsProcessor):
    """The k most likely tokens, exactly k even with ties."""

    def __init__(self, k: int = 10):
        self.k = int(k)
        self.greedy = self.k == 1

    def __call__(self, logits, history=None):
        if self.k >= logits.shape[-1]:
            return logits
        keep = torch.zeros_like(logits, dtype=torch.bool)                 # [B, V]
        keep.scatter_(-1, logits.topk(self.k, dim=-1).indices, True)
        return logits.masked_fill(~keep, float("-inf"))

    def describe(self):
        return f"top-k({self.k})"


class TopP(LogitsProcessor):
    """Nucleus (Holtzman et al. 2020): the smallest set of most likely tokens whose
    probability reaches p."""

    def __init__(self, p: float = 0.9):
        self.p = float(p)

    def __call__(self, logits, history=None):
        return logits if self.p >= 1.0 else nucleus(logits, self.p)

    def warnings(self):
        return [f"{self.describe()} {NO_EFFECT}"] if self.p >= 1.0 else []

    def describe(self):
        return f"top-p({self.p:g})"


class MinP(LogitsProcessor):
    """Tokens whose probability is at least p times the row's largest."""

    def __init__(self, p: float = 0.1):
        self.p = float(p)

    def __call__(self, logits, history=None):
        if self.p == 0:
            return logits
        # prob >= p * max prob  <=>  logit >= max logit + log p (no softmax needed)
        floor = logits.max(-1, keepdim=True).values + math.log(self.p)    # [B, 1]
        return logits.masked_fill(logits < floor, float("-inf"))

    def warnings(self):
        return [f"{self.describe()} {NO_EFFECT}"] if self.p == 0 else []

    def describe(self):
        return f"min-p({self.p:g})"


class TypicalP(LogitsProcessor):
    """Locally typical sampling (Meister et al. 2023): rank tokens by |-log p - H|, how
    far their information is from the row's entropy H, and keep the smallest set of the
    most typical whose probability reaches p."""

    def __init__(self, p: float = 0.95):
        self.p = float(p)

    def __call__(self, logits, history=None):
        if self.p >= 1.0:
            return logits
        logp = logits.log_softmax(-1)                                     # [B, V]
        entropy = torch.special.entr(logp.exp()).sum(-1, keepdim=True)    # [B, 1]; 0 log 0 = 0
        # filtered tokens (-inf) get distance inf and rank last
        return keep_mass(logits, (-logp - entropy).abs().sort(dim=-1).indices, self.p)

    def warnings(self):
        return [f"{self.describe()} {NO_EFFECT}"] if self.p >= 1.0 else []

    def describe(self):
        return f"typical-p({self.p:g})"


def nucleus(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches p. [B, V]"""
    return keep_mass(logits, logits.sort(dim=-1, descending=True).indices, p)


def keep_mass(logits: torch.Tensor, order: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the shortest prefix of each row's `order` (token ids [B, V], preferred first)
    whose probability reaches p; the first token of each row is always kept. [B, V]"""
    ranked = logits.gather(-1, order)                                     # [B, V]
    probs = ranked.softmax(dim=-1)
    drop = probs.cumsum(dim=-1) - probs >= p       # the mass before this token already >= p
    return logits.scatter(-1, order, ranked.masked_fill(drop, float("-inf")))
