"""IndRNN cell plugin for seqgen: h_t = relu(W x_t + u * h_{t-1} + b), u a vector."""
from __future__ import annotations

import torch
from torch import nn

from seqgen import Cell, hookimpl
from seqgen.options import HIDDEN_SIZE, NUM_LAYERS, options_schema

# The shared fragments for the options every cell has, plus this cell's own.
SCHEMA = options_schema(
    title="IndRNN cell options",
    hidden_size=HIDDEN_SIZE,
    num_layers=NUM_LAYERS,
    recurrent_max={"type": "number", "exclusiveMinimum": 0, "default": 1.0,
                   "description": "Recurrent weights are kept in [-max, max] for stability."},
)


class IndRNN(Cell):
    def __init__(self, input_size: int, hidden_size: int = 128, num_layers: int = 1,
                 recurrent_max: float = 1.0):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.recurrent_max = recurrent_max
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.inputs = nn.ModuleList(nn.Linear(s, hidden_size) for s in sizes)
        self.recurrent = nn.ParameterList(
            nn.Parameter(torch.empty(hidden_size).uniform_(0, recurrent_max)) for _ in sizes)

    def initial_state(self, batch_size, device=None):
        return torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device)

    def forward(self, x, state=None, lengths=None):
        # x [T, B, I]; state [L, B, H]
        steps, batch = x.shape[:2]
        if state is None:
            state = self.initial_state(batch, x.device)
        valid = None
        if lengths is not None:  # [T, B, 1]: True where a row still has input
            valid = (torch.arange(steps)[:, None] < lengths[None, :]).to(x.device)[..., None]
        finals = []
        for layer, (proj, u) in enumerate(zip(self.inputs, self.recurrent)):
            u = u.clamp(-self.recurrent_max, self.recurrent_max)
            xw = proj(x)                                   # [T, B, H], all steps at once
            h, outs = state[layer], []
            for t, xw_t in enumerate(xw.unbind(0)):
                new = torch.relu(xw_t + u * h)             # [B, H]
                h = new if valid is None else torch.where(valid[t], new, h)
                outs.append(new if valid is None else new * valid[t])
            x = torch.stack(outs)                          # [T, B, H]
            finals.append(h)
        return x, torch.stack(finals)


@hookimpl
def register_cells(register):
    register("indrnn", IndRNN, SCHEMA, "IndRNN: relu cell with a per-unit recurrent weight.")
