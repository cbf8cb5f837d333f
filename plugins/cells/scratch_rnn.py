"""Elman RNN from scratch:

    h' = act(W_ih x + b_ih + W_hh h + b_hh),  act = tanh or relu

Two linear maps summed; the same as one map over the concatenation [x, h] with the
weights side by side, [W_ih | W_hh] (tests/test_cells_reference.py checks it).
"""
from __future__ import annotations

import torch

from .lengths import freeze
from .scratch import ScratchCell, add_biases, project_inputs

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def rnn_recurrence(x, state, w_ih, w_hh, b_ih, b_hh, valid, trace=None,
                   activation=torch.tanh):
    """x [T, B, I], state (h,) with h [B, H] -> (output [T, B, H], (h,)).
    trace: a list that gets, per step, {"h"} [B, H]."""
    (h,) = state
    xw = project_inputs(x, w_ih, add_biases(b_ih, b_hh))  # T x [B, H]: W_ih x_t + b_ih + b_hh
    w_hh_t = w_hh.t()                                     # [H, H]
    masks = [None] * len(xw) if valid is None else valid.unbind(0)  # T x [B, 1]
    outputs = []
    for xw_t, valid_t in zip(xw, masks):
        h = freeze(valid_t, activation(torch.addmm(xw_t, h, w_hh_t)), h)
        if trace is not None:
            trace.append({"h": h})
        outputs.append(h)
    return torch.stack(outputs), (h,)


class ScratchRNN(ScratchCell):
    gate_count = 1

    def __init__(self, input_size: int, *, nonlinearity: str = "tanh", **options):
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
        super().__init__(input_size, **options)
        self.nonlinearity = nonlinearity

    def recurrence(self, x, state, w_ih, w_hh, b_ih, b_hh, valid, trace=None):
        return rnn_recurrence(x, state, w_ih, w_hh, b_ih, b_hh, valid, trace,
                              activation=ACTIVATIONS[self.nonlinearity])
