"""One time step of a fused cell through torch's single-step kernels.

Why: on CPU, nn.LSTM/GRU/RNN called with T=1 runs oneDNN's whole-sequence kernel, whose
set-up cost dwarfs one step (2 layers, H=256, batch 1: ~300 us, and 700+ us when glibc
serves its buffers by mmap, against ~120 us for two torch.lstm_cell calls). So FusedCell
sends T == 1 inference here, with the same weights and the same numbers. (Generation's
long-lived LSTM stepper on CPU goes further: lstm_stepper.py.)

A kernel maps (x [B, I], state (h,) or (h, c) each [B, H], w_ih, w_hh, b_ih, b_hh) to the
new state tuple, h first.
"""
from __future__ import annotations

import torch

from seqgen import State, dropout


def lstm_kernel(x, state, w_ih, w_hh, b_ih, b_hh):
    return torch.lstm_cell(x, state, w_ih, w_hh, b_ih, b_hh)


def gru_kernel(x, state, w_ih, w_hh, b_ih, b_hh):
    return (torch.gru_cell(x, state[0], w_ih, w_hh, b_ih, b_hh),)


def rnn_tanh_kernel(x, state, w_ih, w_hh, b_ih, b_hh):
    return (torch.rnn_tanh_cell(x, state[0], w_ih, w_hh, b_ih, b_hh),)


def rnn_relu_kernel(x, state, w_ih, w_hh, b_ih, b_hh):
    return (torch.rnn_relu_cell(x, state[0], w_ih, w_hh, b_ih, b_hh),)


class LayerStepper:
    """Steps a fused cell one input at a time with a kernel per layer and direction.

    Between steps the state lives as one tuple per layer*direction (each [B, H]), so a step
    neither indexes nor stacks [L*D, B, H] tensors; `state` joins them back when read. With
    one step the reverse direction sees the same single input, so a bidirectional layer
    steps each direction from its own state like the forward one.
    """

    def __init__(self, cell, state: State, kernel, output_dropout: bool = False):
        """`output_dropout`: apply the cell's output_dropout (training only) to each step's
        output, for stepping outside `cell.forward` (which applies it itself)."""
        self.cell = cell
        self.kernel = kernel
        self.weights = cell.all_layer_weights()
        parts = cell.split_state(state)                                # (h,) or (h, c)
        self.parts = [tuple(p[index] for p in parts) for index in range(len(self.weights))]
        self.dropout = cell.dropout if cell.training else 0.0
        self.output_dropout = cell.output_dropout if output_dropout and cell.training else 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, I] -> output [B, H*D]."""
        directions, layers = self.cell.num_directions, self.cell.num_layers
        for layer in range(layers):
            outputs = []
            for index in range(layer * directions, (layer + 1) * directions):
                new = self.kernel(x, self.parts[index], *self.weights[index])
                self.parts[index] = new
                outputs.append(new[0])
            x = torch.cat(outputs, 1) if directions == 2 else outputs[0]
            if self.dropout and layer < layers - 1:
                x = dropout(x, self.dropout, True)
        if self.output_dropout:
            x = dropout(x, self.output_dropout, True)
        return x

    @property
    def state(self) -> State:
        return self.cell.join_state(tuple(torch.stack(part) for part in zip(*self.parts)))
