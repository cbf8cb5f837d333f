"""Recurrent state as the cells pass it around.

A state is whatever a cell returns: a tensor `h` of shape [L*D, B, H] (RNN, GRU) or a
tuple `(h, c)` of such tensors (LSTM), L layers and D directions, matching torch's
fused modules so weights and states move between the two forms unchanged. These helpers
treat a state as a small tree of tensors so the trainer and the generator never need to
know which cell they drive.
"""
from __future__ import annotations

from typing import Callable, Union

import torch

State = Union[torch.Tensor, tuple["State", ...], list, None]


def map_state(fn: Callable[[torch.Tensor], torch.Tensor], state: State) -> State:
    """Apply `fn` to every tensor in `state`, keeping its structure."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    return type(state)(map_state(fn, s) for s in state)


def detach_state(state: State) -> State:
    """Cut the autograd history (truncated BPTT between adjacent batches)."""
    return map_state(torch.Tensor.detach, state)


def select_batch(state: State, index: torch.Tensor) -> State:
    """Pick batch rows (dim 1) of every tensor: used to reorder or repeat samples."""
    return map_state(lambda t: t.index_select(1, index), state)
