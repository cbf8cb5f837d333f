""""luong": multiplicative attention (Luong et al. 2015).

    "dot":     score[b, s] = query[b] . memory[b, s]        (needs query_size == memory_size)
    "general": score[b, s] = query[b] . (W memory[b, s])    (W: memory_size -> query_size)

`scale` divides the scores by sqrt(query_size). W memory is precomputed by `keys`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from seqgen import Attention, SpecError, masked_softmax, weighted_sum

SCORES = ("dot", "general")


class Multiplicative(Attention):
    """q . m or q^T W m, optionally scaled, softmaxed over real positions."""

    def __init__(self, query_size: int, memory_size: int, score: str = "general",
                 scale: bool = False):
        super().__init__(query_size, memory_size)
        if score not in SCORES:
            raise SpecError([f"luong attention: score must be one of {list(SCORES)}, "
                             f"not {score!r}"])
        if score == "dot" and query_size != memory_size:
            raise SpecError([f"luong attention: score \"dot\" needs the query size "
                             f"({query_size}) to equal the memory size ({memory_size}); "
                             f"use score \"general\" for different sizes"])
        self.score, self.scale = score, scale
        # general: [M] -> [Q]; dot has no parameters.
        self.W = nn.Linear(memory_size, query_size, bias=False) if score == "general" else None

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return memory if self.W is None else self.W(memory)        # [B, S, Q]

    def forward(self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if keys is None:
            keys = self.keys(memory)                                # [B, S, Q]
        scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)   # [B, S]
        if self.scale:
            scores = scores / math.sqrt(self.query_size)
        weights = masked_softmax(scores, mask)                      # [B, S]
        return weighted_sum(weights, memory), weights               # [B, M], [B, S]
