"""What fused and scratch cells share: options, the initial state, and state plumbing.

Both forms keep their weights in a submodule named `rnn` with torch's parameter names
(nn.RNN/GRU/LSTM for fused cells, RecurrentWeights for scratch ones) and the learned
initial state in `h0` (and `c0` for LSTM), so their state dicts are interchangeable.

Both also know their recurrence written out (`layer_recurrence`, from the scratch_*
modules): the scratch cells run it, and `inspect` runs it on either form's weights to
record the gates, which torch's fused kernels never expose.
"""
from __future__ import annotations

import torch
from torch import nn

from seqgen import Cell, State, dropout

from .init import init_scheme
from .lengths import reverse_within_length, valid_steps


class RecurrentCell(Cell):
    """Subclasses set `gate_count` (1 RNN, 3 GRU, 4 LSTM), `has_cell_state` (LSTM's c)
    and create `self.rnn` after calling this constructor."""

    gate_count: int
    has_cell_state = False

    def __init__(self, input_size: int, *, hidden_size: int = 128, num_layers: int = 1,
                 dropout: float = 0.0, bidirectional: bool = False, bias: bool = True,
                 initial_state: str = "zeros", init: dict | str | None = None,
                 output_dropout: float = 0.0):
        super().__init__()
        if initial_state not in ("zeros", "learned"):
            raise ValueError(f"initial_state must be 'zeros' or 'learned', not {initial_state!r}")
        if not 0.0 <= float(output_dropout) < 1.0:
            raise ValueError(f"output_dropout must be in [0, 1), not {output_dropout!r}")
        self.init = init_scheme(init)  # checked here; applied by self.rnn (init.py)
        self.output_dropout = float(output_dropout)
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.bias = bool(bias)
        self.learned_initial_state = initial_state == "learned"
        if self.learned_initial_state:
            # [L*D, 1, H], broadcast over the batch; zeros, so training starts where "zeros" does.
            shape = (self.num_layers * self.num_directions, 1, self.hidden_size)
            self.h0 = nn.Parameter(torch.zeros(shape))
            if self.has_cell_state:
                self.c0 = nn.Parameter(torch.zeros(shape))

    def drop_output(self, output: torch.Tensor) -> torch.Tensor:
        """`output_dropout` on the last layer's output, in training only, drawn from the
        run's dropout generator (seqgen.dropout)."""
        return dropout(output, self.output_dropout, self.training)

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> State:
        """[L*D, B, H] zeros or the learned vectors expanded over the batch; (h, c) for LSTM."""
        weight = self.rnn.weight_hh_l0
        device = weight.device if device is None else device
        if self.learned_initial_state:
            learned = (self.h0, self.c0) if self.has_cell_state else (self.h0,)
            parts = tuple(p.to(device).expand(-1, batch_size, -1) for p in learned)
        else:
            shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
            parts = tuple(torch.zeros(shape, dtype=weight.dtype, device=device)
                          for _ in range(1 + self.has_cell_state))
        return self.join_state(parts)

    def split_state(self, state: State) -> tuple[torch.Tensor, ...]:
        """A state as a tuple of [L*D, B, H] tensors: (h,) or (h, c)."""
        return tuple(state) if self.has_cell_state else (state,)

    def join_state(self, parts) -> State:
        """Inverse of split_state: torch's format, a tensor h or a tuple (h, c)."""
        return tuple(parts) if self.has_cell_state else parts[0]

    def layer_weights(self, index: int) -> tuple:
        """(w_ih, w_hh, b_ih, b_hh) of layer*D + direction `index`; biases None without bias."""
        return self.all_layer_weights()[index]

    def all_layer_weights(self) -> list[tuple]:
        """layer_weights of every layer*D + direction, in one pass over the module (building
        torch's all_weights costs ~6 us, which matters once per generated token)."""
        return [(w_ih, w_hh, *biases) if biases else (w_ih, w_hh, None, None)
                for w_ih, w_hh, *biases in self.rnn.all_weights]

    def layer_recurrence(self, index: int):
        """The written-out recurrence of layer*D + direction `index` (scratch.py's
        signature, `trace` included)."""
        raise NotImplementedError

    def run_layers(self, x: torch.Tensor, state, lengths: torch.Tensor | None, train: bool,
                   traces: list[list] | None = None):
        """The written-out recurrence over every layer and direction, with dropout
        between layers (and on the output) when `train`: the scratch cells' forward.

        x [T, B, I] -> (output [T, B, H*D], state [L*D, B, H] or (h, c)). `traces`, one
        list per layer*D + direction, gets each step's gates and states (a dict of
        [B, H] tensors per step, in text order for both directions; not with lengths).
        """
        T, B, _ = x.shape
        parts = self.split_state(self.initial_state(B, x.device) if state is None else state)
        valid = None if lengths is None else valid_steps(lengths, T, x.device)  # [T, B, 1]
        directions = self.num_directions
        finals = []  # per layer * D + direction: final state tuple, each [B, H]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                start = tuple(p[index] for p in parts)           # each [B, H]
                weights = self.layer_weights(index)
                recurrence = self.layer_recurrence(index)
                trace = None if traces is None else traces[index]
                if direction == 0:
                    output, final = recurrence(x, start, *weights, valid, trace)
                else:  # right to left, each row from its own last real step
                    output, final = recurrence(reverse_within_length(x, lengths), start,
                                               *weights, valid, trace)
                    output = reverse_within_length(output, lengths)
                    if trace is not None:
                        trace.reverse()                          # back into text order
                outputs.append(output)                           # [T, B, H]
                finals.append(final)
            x = torch.cat(outputs, 2) if directions == 2 else outputs[0]  # [T, B, H*D]
            if layer < self.num_layers - 1:
                x = dropout(x, self.dropout, train)
        x = dropout(x, self.output_dropout, train)
        if valid is not None:
            x = x.masked_fill(~valid, 0.0)  # padded steps hold the frozen state: zero them
        return x, self.join_state(tuple(torch.stack(part) for part in zip(*finals)))

    @torch.no_grad()
    def inspect(self, x: torch.Tensor, state: State = None) -> list[dict[str, torch.Tensor]]:
        """Gates and states per step (seqgen.Cell.inspect): one dict per layer*D +
        direction, e.g. LSTM {"i", "f", "g", "o", "c", "h"}, GRU {"r", "z", "n", "h"},
        RNN {"h"}, each [T, B, H]. Fused cells run the written-out recurrence on their
        own weights (the cell tests prove it equal to torch's kernels). No dropout."""
        traces: list[list] = [[] for _ in range(self.num_layers * self.num_directions)]
        self.run_layers(x, state, None, False, traces)
        return [{name: torch.stack([step[name] for step in steps]) for name in steps[0]}
                for steps in traces]

    def extra_repr(self) -> str:
        text = f"initial_state={'learned' if self.learned_initial_state else 'zeros'}"
        if self.init["type"] != "default":
            text += f", init={self.init}"
        if self.output_dropout:
            text += f", output_dropout={self.output_dropout}"
        return text
