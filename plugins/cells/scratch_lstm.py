"""LSTM from scratch, gates in torch's order (i, f, g, o):

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         candidate cell
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f * c + i * g
    h' = o * tanh(c')
"""
from __future__ import annotations

import torch

from .layer_norm import LayerNormed, lstm_ln_recurrence
from .lengths import freeze
from .scratch import ScratchCell, add_biases, project_inputs


def lstm_recurrence(x, state, w_ih, w_hh, b_ih, b_hh, valid, trace=None):
    """x [T, B, I], state (h, c) each [B, H] -> (output [T, B, H], (h, c)).
    trace: a list that gets, per step, {"i", "f", "g", "o", "c", "h"} each [B, H]."""
    h, c = state
    xw = project_inputs(x, w_ih, add_biases(b_ih, b_hh))  # T x [B, 4H]: W_ih x_t + b_ih + b_hh
    w_hh_t = w_hh.t()                                     # [H, 4H]
    masks = [None] * len(xw) if valid is None else valid.unbind(0)  # T x [B, 1]
    outputs = []
    for xw_t, valid_t in zip(xw, masks):
        gates = torch.addmm(xw_t, h, w_hh_t)              # [B, 4H], adds W_hh h
        i, f, g, o = gates.chunk(4, 1)                    # each [B, H]
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c_next = f * c + i * g
        h_next = o * c_next.tanh()
        h, c = freeze(valid_t, h_next, h), freeze(valid_t, c_next, c)
        if trace is not None:
            trace.append({"i": i, "f": f, "g": g, "o": o, "c": c, "h": h})
        outputs.append(h)
    return torch.stack(outputs), (h, c)


class ScratchLSTM(LayerNormed, ScratchCell):
    gate_count = 4
    has_cell_state = True
    recurrence = staticmethod(lstm_recurrence)
    ln_recurrence = staticmethod(lstm_ln_recurrence)
