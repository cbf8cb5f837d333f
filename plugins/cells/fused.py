"""Cells backed by torch's fused nn.RNN / nn.GRU / nn.LSTM (oneDNN on CPU, cuDNN on GPU).

The torch module lives in `self.rnn`, so the state dict has torch's names
(rnn.weight_ih_l0, ...) and matches the scratch cells'.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .base import RecurrentCell
from .step import gru_kernel, lstm_kernel, rnn_relu_kernel, rnn_tanh_kernel, step_layers


class FusedCell(RecurrentCell):
    """Subclasses build `self.rnn` with `make_module` and set `self.kernel` (see step.py)."""

    def make_module(self, module_class: type[nn.RNNBase], **extra) -> nn.RNNBase:
        return module_class(self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
                            dropout=self.dropout, bidirectional=self.bidirectional, **extra)

    def forward(self, x: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        """x [T, B, I] -> (output [T, B, H*D], state [L*D, B, H] or (h, c))."""
        T, B, _ = x.shape
        if state is None:
            state = self.initial_state(B, x.device)
        if lengths is not None:
            packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            output, state = self.rnn(packed, state)  # state: each row's at its own length
            output, _ = pad_packed_sequence(output, total_length=T)  # zeros past each length
            return output, state
        if T == 1 and not (self.training and torch.is_grad_enabled()):
            output, parts = step_layers(self, x[0], self.split_state(state), self.kernel)
            return output.unsqueeze(0), self.join_state(parts)
        return self.rnn(x, state)


class FusedRNN(FusedCell):
    gate_count = 1

    def __init__(self, input_size: int, *, nonlinearity: str = "tanh", **options):
        super().__init__(input_size, **options)
        self.rnn = self.make_module(nn.RNN, nonlinearity=nonlinearity)  # checks nonlinearity
        self.nonlinearity = nonlinearity
        self.kernel = rnn_tanh_kernel if nonlinearity == "tanh" else rnn_relu_kernel


class FusedGRU(FusedCell):
    gate_count = 3

    def __init__(self, input_size: int, **options):
        super().__init__(input_size, **options)
        self.rnn = self.make_module(nn.GRU)
        self.kernel = gru_kernel


class FusedLSTM(FusedCell):
    gate_count = 4
    has_cell_state = True

    def __init__(self, input_size: int, **options):
        super().__init__(input_size, **options)
        self.rnn = self.make_module(nn.LSTM)
        self.kernel = lstm_kernel
