"""Scratch cells: the recurrence written out in Python, stacked over layers and directions.

A family module (scratch_rnn.py, scratch_gru.py, scratch_lstm.py) supplies `recurrence`,
one direction of one layer:

    recurrence(x [T, B, I], state (h,) or (h, c) each [B, H], w_ih, w_hh, b_ih, b_hh,
               valid [T, B, 1] bool or None) -> (output [T, B, H], final state tuple)

RecurrentCell.run_layers (base.py) wires layers, directions, dropout and padding around
it. The weights live in `self.rnn`, a RecurrentWeights with nn.RNN/GRU/LSTM's names and
shapes. A family whose recurrence depends on the layer (layer_norm's gains) overrides
`layer_recurrence`.

Every recurrence also takes `trace`, a list or None: given a list, it appends one dict
per step of that step's gates and states, each [B, H] (what `Cell.inspect` reports).
"""
from __future__ import annotations

import torch

from .base import RecurrentCell
from .weights import RecurrentWeights


def project_inputs(x: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor | None):
    """All time steps' input projections in one matmul, split per step.

    x [T, B, I] -> T tensors [B, G*H], each W_ih x_t + bias. `unbind` rather than
    indexing xw[t]: its backward stacks the T gradients once, where every xw[t] slice
    would allocate (and sum) a full [T, B, G*H] gradient of its own.
    """
    T, B, I = x.shape
    flat = x.reshape(T * B, I)                                   # [T*B, I]
    xw = flat @ w_ih.t() if bias is None else torch.addmm(bias, flat, w_ih.t())
    return xw.view(T, B, -1).unbind(0)


def add_biases(b_ih: torch.Tensor | None, b_hh: torch.Tensor | None) -> torch.Tensor | None:
    """b_ih + b_hh, folded into the input projection when the gates only ever add them."""
    return None if b_ih is None else b_ih + b_hh


class ScratchCell(RecurrentCell):
    """Subclasses set `gate_count` and `recurrence` (a staticmethod, or a method when it
    depends on an option, like the RNN's nonlinearity)."""

    explicit_randomness = True        # dropout through seqgen.dropout, the run's generator

    def __init__(self, input_size: int, **options):
        super().__init__(input_size, **options)
        self.rnn = RecurrentWeights(self.input_size, self.hidden_size, self.num_layers,
                                    self.gate_count, self.bias, self.bidirectional,
                                    init=self.init)

    def layer_recurrence(self, index: int):
        """The recurrence of layer*D + direction `index`."""
        return self.recurrence

    def forward(self, x: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        """x [T, B, I] -> (output [T, B, H*D], state [L*D, B, H] or (h, c))."""
        return self.run_layers(x, state, lengths, self.training)
