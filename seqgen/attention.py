"""The contract every attention plugin implements: `Attention` (read its docstring).

An encoder-decoder model (seqgen/seq2seq.py) asks its attention, at every decoder step,
which source positions to read:

    query  [B, Q]      the decoder's top-layer hidden state before the step
    memory [B, S, M]   the encoder's output at every source position
    mask   [B, S]      bool, True at real source positions, False at padding
       -> context [B, M]   sum over s of weights[b, s] * memory[b, s]
          weights [B, S]   >= 0, zero at padding, summing to 1 over each row's real positions
"""
from __future__ import annotations

import torch
from torch import nn

# What masked scores become before the softmax: exp() of it is exactly 0 in float32 and
# bfloat16, and it stays finite, so a row's weights never turn into NaN.
MASKED_SCORE = -1e9


class Attention(nn.Module):
    """Base class of every attention plugin: a torch module scoring source positions.

    An attention factory is registered with `register_attentions`:
    `factory(query_size, memory_size, **options)` returns an Attention. Hold it to this
    contract with `seqgen.testing.check_attention`.

        context, weights = attention(query, memory, mask)

    query [B, Q=query_size], memory [B, S, M=memory_size], mask [B, S] bool (every row
    has at least one True) -> context [B, M], weights [B, S]. Weights are 0 where the
    mask is False and sum to 1 over the rest of the row; context is the weighted sum of
    memory rows. Rows are independent: a row's result depends only on that row.

    `keys(memory)` may precompute what does not depend on the query (Bahdanau's W_k m,
    Luong's W m) as one tensor [B, S, K] (batch first, so the model can reorder its rows
    with the rest of its state); the model calls it once per source and passes it back as
    `attention(query, memory, mask, keys=...)`, so a decoding step costs O(S) and not a
    projection of the whole memory. The default keeps nothing (None).

    `static` is True for an attention whose weights do not depend on the query (the
    built-in "none", which reads the last real source position): the model then runs
    teacher-forced decoding as one whole-sequence call instead of a loop over steps.
    Subclasses may set `context_size` when the context is not memory_size wide.
    """

    static: bool = False

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.query_size, self.memory_size = query_size, memory_size
        self.context_size = memory_size

    def keys(self, memory: torch.Tensor) -> torch.Tensor | None:
        """memory [B, S, M] -> keys [B, S, K] that `forward` reuses at every step, or
        None (the default) when there is nothing to precompute."""
        return None

    def forward(self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """scores [B, S], mask [B, S] bool -> weights [B, S]: softmax over the real positions,
    exactly 0 at padding."""
    scores = scores.masked_fill(~mask, MASKED_SCORE)
    return torch.softmax(scores.float(), dim=-1).to(scores.dtype) * mask


def weighted_sum(weights: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """weights [B, S], memory [B, S, M] -> context [B, M]."""
    return torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
