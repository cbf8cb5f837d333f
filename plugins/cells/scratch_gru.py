"""GRU from scratch, gates in torch's order (r, z, n), torch's formula:

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)      update gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   candidate; r scales W_hn h + b_hn
    h' = (1 - z) * n + z * h
"""
from __future__ import annotations

import torch

from .layer_norm import LayerNormed, gru_ln_recurrence
from .lengths import freeze
from .scratch import ScratchCell, project_inputs


def gru_recurrence(x, state, w_ih, w_hh, b_ih, b_hh, valid, trace=None):
    """x [T, B, I], state (h,) with h [B, H] -> (output [T, B, H], (h,)).
    trace: a list that gets, per step, {"r", "z", "n", "h"} each [B, H]."""
    (h,) = state
    # b_hh stays out of the projection: r multiplies W_hn h + b_hn, bias included.
    xw = project_inputs(x, w_ih, b_ih)                    # T x [B, 3H]: W_ih x_t + b_ih
    w_hh_t = w_hh.t()                                     # [H, 3H]
    masks = [None] * len(xw) if valid is None else valid.unbind(0)  # T x [B, 1]
    outputs = []
    for xw_t, valid_t in zip(xw, masks):
        hw = h @ w_hh_t if b_hh is None else torch.addmm(b_hh, h, w_hh_t)  # [B, 3H]
        x_r, x_z, x_n = xw_t.chunk(3, 1)                  # each [B, H]
        h_r, h_z, h_n = hw.chunk(3, 1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = freeze(valid_t, (1 - z) * n + z * h, h)
        if trace is not None:
            trace.append({"r": r, "z": z, "n": n, "h": h})
        outputs.append(h)
    return torch.stack(outputs), (h,)


class ScratchGRU(LayerNormed, ScratchCell):
    gate_count = 3
    recurrence = staticmethod(gru_recurrence)
    ln_recurrence = staticmethod(gru_ln_recurrence)
