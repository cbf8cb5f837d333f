"""Padded batches in the scratch cells: which steps are real, and reversal within a length.

A row of length L_b has real steps 0 .. L_b-1 and padding after. The recurrences freeze
a row's state once its steps run out, so the final state is the one after its last real
step; the cell zeroes the outputs at padded steps.
"""
from __future__ import annotations

import torch


def valid_steps(lengths: torch.Tensor, steps: int, device) -> torch.Tensor:
    """lengths [B] -> [T, B, 1] bool, True where step t < L_b (broadcasts over features)."""
    t = torch.arange(steps, device=device).unsqueeze(1)          # [T, 1]
    return (t < lengths.to(device).unsqueeze(0)).unsqueeze(2)    # [T, B, 1]


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """x [T, B, F] -> each row's real steps in reverse order, padding left in place.

    Row b of length L_b: step t < L_b reads step L_b - 1 - t, so the backward direction
    starts at the row's own last token, not at the padding. Applying it twice is identity.
    """
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T, device=x.device).unsqueeze(1)             # [T, 1]
    last = lengths.to(x.device).unsqueeze(0) - 1                  # [1, B]
    source = torch.where(t <= last, last - t, t)                  # [T, B]
    return x.gather(0, source.unsqueeze(2).expand_as(x))


def freeze(valid_t: torch.Tensor | None, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Keep `old` in the rows whose sequence has ended (valid_t [B, 1] False)."""
    return new if valid_t is None else torch.where(valid_t, new, old)
