"""The parameters of a stacked, optionally bidirectional recurrent network, in torch's layout.

Names and shapes are exactly those of nn.RNN/GRU/LSTM, so a scratch cell's state dict loads
into the fused cell of the same family and back. G gates (1 RNN, 3 GRU, 4 LSTM) are stacked
along dim 0 in torch's order (GRU: r, z, n; LSTM: i, f, g, o):

    weight_ih_l{k}{sfx}: [G*H, I_k]   I_0 = input_size, I_k = H * D for k > 0
    weight_hh_l{k}{sfx}: [G*H, H]
    bias_ih_l{k}{sfx}:   [G*H]        (only with bias=True)
    bias_hh_l{k}{sfx}:   [G*H]
    sfx = "" for the forward direction, "_reverse" for the backward one.
"""
from __future__ import annotations

import torch
from torch import nn

from .init import DEFAULT, apply_init


class RecurrentWeights(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int, gate_count: int,
                 bias: bool, bidirectional: bool, init: dict = DEFAULT):
        super().__init__()
        directions = 2 if bidirectional else 1
        self._names = []  # per layer * D + direction: the parameter names, torch's order
        # Registration order = torch's order, so the same seed draws the same weights.
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {f"weight_ih{sfx}": (gate_count * hidden_size, layer_input),
                          f"weight_hh{sfx}": (gate_count * hidden_size, hidden_size)}
                if bias:
                    shapes[f"bias_ih{sfx}"] = (gate_count * hidden_size,)
                    shapes[f"bias_hh{sfx}"] = (gate_count * hidden_size,)
                for name, shape in shapes.items():
                    self.register_parameter(name, nn.Parameter(torch.empty(shape)))
                self._names.append(list(shapes))
        self.hidden_size = hidden_size
        # torch's default first, then the scheme: the same global draws as the fused
        # cells' constructors (torch's module draws its default before the cell's init).
        self.init = dict(DEFAULT)
        self.reset_parameters()
        self.init = dict(init)  # a checked scheme (init.py's init_scheme)
        if self.init != DEFAULT:
            self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw every parameter by the `init` scheme (torch's U(-1/sqrt(H), 1/sqrt(H)) by
        default; init.py), from `generator` (a run's "init" stream) or torch's global one."""
        apply_init(self.all_weights, self.hidden_size, self.init, generator)

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """[w_ih, w_hh(, b_ih, b_hh)] per layer * D + direction, like nn.RNNBase.all_weights."""
        return [[getattr(self, name) for name in names] for names in self._names]
