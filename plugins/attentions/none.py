""""none": no learned attention; the context is the memory at each row's last real position.

This is d2l's plain Seq2SeqDecoder, whose context is the encoder's final output. The
weights do not depend on the query (`static`), so the model decodes teacher-forced
sequences in one call.
"""
from __future__ import annotations

import torch

from seqgen import Attention


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """mask [B, S] bool -> [B] long: the index of each row's last True."""
    steps = torch.arange(1, mask.size(1) + 1, device=mask.device)      # [S]: 1..S
    return (mask.long() * steps).argmax(dim=1)                         # [B]


class LastPosition(Attention):
    """Reads the memory at the last real source position; no parameters."""

    static = True

    def forward(self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
                keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, _ = memory.shape                                 # memory [B, S, M]
        last = last_positions(mask)                                    # [B]
        weights = torch.zeros(batch, steps, dtype=memory.dtype, device=memory.device)
        weights[torch.arange(batch, device=memory.device), last] = 1   # [B, S] one-hot
        context = memory[torch.arange(batch, device=memory.device), last]  # [B, M]
        return context, weights
