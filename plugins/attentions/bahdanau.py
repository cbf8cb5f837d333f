""""bahdanau": additive attention (Bahdanau et al. 2015; d2l's AdditiveAttention).

    score[b, s] = w_v . tanh(W_q query[b] + W_k memory[b, s])

W_k memory is precomputed once per source by `keys`, so a decoding step costs W_q q.
"""
from __future__ import annotations

import torch
from torch import nn

from seqgen import Attention, masked_softmax, weighted_sum


class Additive(Attention):
    """v^T tanh(W_q q + W_k m), softmaxed over real positions; `size` is the hidden
    size of the scoring MLP (None: query_size)."""

    def __init__(self, query_size: int, memory_size: int, size: int | None = None):
        super().__init__(query_size, memory_size)
        self.size = query_size if size is None else size
        self.W_q = nn.Linear(query_size, self.size, bias=False)     # [Q] -> [H]
        self.W_k = nn.Linear(memory_size, self.size, bias=False)    # [M] -> [H]
        self.w_v = nn.Linear(self.size, 1, bias=False)              # [H] -> [1]

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.W_k(memory)                                     # [B, S, H]

    def forward(self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if keys is None:
            keys = self.keys(memory)                                # [B, S, H]
        features = torch.tanh(self.W_q(query).unsqueeze(1) + keys)  # [B, 1, H] + [B, S, H]
        scores = self.w_v(features).squeeze(-1)                     # [B, S]
        weights = masked_softmax(scores, mask)                      # [B, S]
        return weighted_sum(weights, memory), weights               # [B, M], [B, S]
