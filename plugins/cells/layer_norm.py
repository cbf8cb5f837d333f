"""Layer normalisation for the scratch LSTM and GRU (`layer_norm: true`).

Ba, Kiros and Hinton 2016, "Layer Normalization", section 3.1 (RNNs): normalise each
time step's summed inputs over the hidden units, then scale and shift by a learned gain
and bias. Here, per layer and direction:

    LSTM  every gate's pre-activation W_i x + b_i + W_h h + b_h, each gate on its own
          (i, f, g, o: mean and variance over its H units, a gain and bias per gate),
          and the new cell state inside the output: h' = o * tanh(LN(c')). c' itself
          is carried unnormalised, as in the paper.
    GRU   the pre-activations of r, z and of the candidate n (x_n + r * h_n), each on
          its own.

Normalising one sum per gate (not W x and W h separately, as the paper's LSTM equations
do) keeps torch's weights and one LayerNorm per gate; the biases b_ih and b_hh stay for
the state-dict layout. Gains start at 1 and biases at 0. The fused cells have no such
kernels and refuse the option.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .lengths import freeze
from .scratch import add_biases, project_inputs


class LayerNorms(nn.Module):
    """Gains and biases of one layer and direction: `gate_weight`, `gate_bias` [G, H],
    and for the LSTM `cell_weight`, `cell_bias` [H]."""

    def __init__(self, gate_count: int, hidden_size: int, cell_state: bool):
        super().__init__()
        self.gate_weight = nn.Parameter(torch.ones(gate_count, hidden_size))
        self.gate_bias = nn.Parameter(torch.zeros(gate_count, hidden_size))
        if cell_state:
            self.cell_weight = nn.Parameter(torch.ones(hidden_size))
            self.cell_bias = nn.Parameter(torch.zeros(hidden_size))

    def gates(self, pre: torch.Tensor, which: slice = slice(None)) -> torch.Tensor:
        """pre [B, G', H] (gates `which`) -> each gate normalised over H, scaled, shifted."""
        H = pre.shape[-1]
        return F.layer_norm(pre, (H,)) * self.gate_weight[which] + self.gate_bias[which]


class LayerNormed:
    """Mixed into a scratch cell (before ScratchCell) whose family sets `ln_recurrence`:
    the `layer_norm` option, a LayerNorms per layer and direction, and the recurrence
    that uses them."""

    ln_recurrence = None

    def __init__(self, input_size: int, *, layer_norm: bool = False, **options):
        super().__init__(input_size, **options)
        self.layer_norm = bool(layer_norm)
        if self.layer_norm:  # per layer*direction gains and biases
            self.layer_norms = nn.ModuleList(
                LayerNorms(self.gate_count, self.hidden_size, cell_state=self.has_cell_state)
                for _ in range(self.num_layers * self.num_directions))

    def layer_recurrence(self, index: int):
        if self.layer_norm:
            norms, recurrence = self.layer_norms[index], self.ln_recurrence
            return lambda *args, **kw: recurrence(*args, norms=norms, **kw)
        return self.recurrence

    def extra_repr(self) -> str:
        return super().extra_repr() + (", layer_norm=True" if self.layer_norm else "")


def lstm_ln_recurrence(x, state, w_ih, w_hh, b_ih, b_hh, valid, trace=None, *,
                       norms: LayerNorms):
    """lstm_recurrence with layer normalisation; x [T, B, I], (h, c) -> (output, (h, c));
    trace as lstm_recurrence's (gates after normalisation)."""
    h, c = state
    B, H = h.shape
    xw = project_inputs(x, w_ih, add_biases(b_ih, b_hh))  # T x [B, 4H]
    w_hh_t = w_hh.t()
    masks = [None] * len(xw) if valid is None else valid.unbind(0)
    outputs = []
    for xw_t, valid_t in zip(xw, masks):
        gates = norms.gates(torch.addmm(xw_t, h, w_hh_t).view(B, 4, H))   # [B, 4, H]
        i, f, g, o = gates.unbind(1)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c_next = f * c + i * g
        h_next = o * F.layer_norm(c_next, (H,), norms.cell_weight, norms.cell_bias).tanh()
        h, c = freeze(valid_t, h_next, h), freeze(valid_t, c_next, c)
        if trace is not None:
            trace.append({"i": i, "f": f, "g": g, "o": o, "c": c, "h": h})
        outputs.append(h)
    return torch.stack(outputs), (h, c)


def gru_ln_recurrence(x, state, w_ih, w_hh, b_ih, b_hh, valid, trace=None, *,
                      norms: LayerNorms):
    """gru_recurrence with layer normalisation; x [T, B, I], (h,) -> (output, (h,));
    trace as gru_recurrence's."""
    (h,) = state
    B, H = h.shape
    xw = project_inputs(x, w_ih, b_ih)                    # T x [B, 3H]
    w_hh_t = w_hh.t()
    masks = [None] * len(xw) if valid is None else valid.unbind(0)
    outputs = []
    for xw_t, valid_t in zip(xw, masks):
        hw = h @ w_hh_t if b_hh is None else torch.addmm(b_hh, h, w_hh_t)
        xs, hs = xw_t.view(B, 3, H), hw.view(B, 3, H)
        r, z = norms.gates(xs[:, :2] + hs[:, :2], slice(0, 2)).sigmoid().unbind(1)
        n = norms.gates((xs[:, 2] + r * hs[:, 2]).unsqueeze(1), slice(2, 3)).squeeze(1).tanh()
        h = freeze(valid_t, (1 - z) * n + z * h, h)
        if trace is not None:
            trace.append({"r": r, "z": z, "n": n, "h": h})
        outputs.append(h)
    return torch.stack(outputs), (h,)
