"""What fused and scratch cells share: options, the initial state, and state plumbing.

Both forms keep their weights in a submodule named `rnn` with torch's parameter names
(nn.RNN/GRU/LSTM for fused cells, RecurrentWeights for scratch ones) and the learned
initial state in `h0` (and `c0` for LSTM), so their state dicts are interchangeable.
"""
from __future__ import annotations

import torch
from torch import nn

from seqgen import Cell, State, dropout

from .init import init_scheme


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

    def extra_repr(self) -> str:
        text = f"initial_state={'learned' if self.learned_initial_state else 'zeros'}"
        if self.init["type"] != "default":
            text += f", init={self.init}"
        if self.output_dropout:
            text += f", output_dropout={self.output_dropout}"
        return text
