"""The contract every recurrent cell plugin implements: `Cell` (read its docstring), and
`Stepper`, the default way generation feeds a cell one time step at a time.
"""
from __future__ import annotations

import torch
from torch import nn

from .state import State


class Cell(nn.Module):
    """Base class of every recurrent cell: a torch module over a whole sequence.

    A cell factory is registered with `register_cells`: `factory(input_size, **options)`
    returns a Cell. Hold it to this contract with `seqgen.testing.check_cell`.

    Time-major, with an explicit state in and out:

        output, state = cell(x, state=None, lengths=None)
        x:      [T, B, input_size]        float
        output: [T, B, hidden_size * D]   D = 2 if bidirectional else 1
        state:  [L*D, B, H] tensor, or a tuple of them (LSTM: (h, c)), as torch's
                nn.RNN/GRU/LSTM

    `state=None` means `initial_state(B)`; states are never modified in place (a learned
    initial state may be an expanded view). `lengths` ([B] int64 on CPU, each in 1..T,
    sorted or not) marks padded batches: positions at or past a row's length give zeros
    in `output`, and the returned state is each row's state after its own last valid
    step. Passing a returned state back continues the sequence. Generation relies on one
    more rule: calling the cell T times with T=1, carrying the state, gives the same
    outputs as one call over the whole sequence (for unidirectional cells).

    Generation steps through `cell.stepper(state)`, which by default does exactly that:

        step = cell.stepper(state)      state as above (not None)
        out = step(x)                   x [B, input_size] -> out [B, hidden_size * D], a
                                        tensor of its own (later calls leave it alone)
        step.state                      the state after the last call, in the format above

    Generation makes and calls it under torch.inference_mode. A cell may return its own
    stepper to make that step cheaper (the built-in fused cells keep the state per layer
    between steps, and the LSTM on CPU runs a hand-written step); it must give the same
    numbers as calling the cell with T=1 (`check_cell` checks it).

    A cell may show its internals to `seqgen inspect` (LoadedModel.inspect) by
    overriding `inspect`:

        layers = cell.inspect(x, state=None)   x [T, B, input_size], state as above
        layers: one dict per layer*D + direction (torch's order: layer 0 forward, layer 0
                reverse, layer 1 forward, ...), each {name: [T, B, H] float tensor} for
                whatever the cell computes per step, in text order for both directions:
                the built-in LSTM gives {"i", "f", "g", "o", "c", "h"}, the GRU
                {"r", "z", "n", "h"}, the RNN {"h"}. No dropout, no autograd needed.

    It returns None by default: inspection then records the states a unidirectional
    cell returns after each step (h, and c for a two-part state), or for a bidirectional
    one its output, and the probabilities either way.

    Subclasses set `input_size`, `hidden_size`, `num_layers` and `bidirectional`, and
    implement `initial_state` and `forward`. Two builds under the same
    `torch.manual_seed` must have equal weights, and every parameter must get a gradient.

    Randomness (seqgen/seeding.py): a run draws everything from generators of its own,
    never from torch's global one. torch's modules in a cell (nn.Linear, nn.LSTM, ...)
    are initialised again from the run's "init" generator; a module with parameters of
    its own gets the same by defining `reset_parameters(self, generator=None)`. Dropout
    in `forward` should be `seqgen.dropout(x, p, self.training)`, which draws from the
    run's "dropout" generator; a cell that draws only that way sets
    `explicit_randomness = True`. Otherwise (the default) the trainer runs its forward
    with torch's global generator seeded from the run's, restored afterwards, under a
    process-wide lock: still reproducible, but concurrent runs take turns.
    """

    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    #: True when training draws random numbers only through seqgen.dropout (see above).
    explicit_randomness: bool = False

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Feature size of `output`: hidden_size times the number of directions."""
        return self.hidden_size * self.num_directions

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> State:
        """The state a sequence starts from, for `batch_size` rows, on `device`
        (the trainer and the generator always give it): [L*D, batch_size, H] or a tuple
        of them, like the state `forward` returns."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: State = None, lengths: torch.Tensor | None = None):
        """x [T, B, input_size] -> (output [T, B, output_size], state); see the class
        docstring for `state` and `lengths`."""
        raise NotImplementedError

    def inspect(self, x: torch.Tensor, state: State = None) -> list[dict[str, torch.Tensor]] | None:
        """Per-step internals of every layer and direction (see the class docstring), or
        None when the cell does not expose them."""
        return None

    def stepper(self, state: State) -> "Stepper":
        """Something that feeds this cell one time step per call, carrying `state`."""
        return Stepper(self, state)


class Stepper:
    """The default stepper: calls the cell with T=1 and keeps the state it returns."""

    def __init__(self, cell: Cell, state: State):
        self.cell = cell
        self.state = state

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, I] -> output [B, H*D]."""
        output, self.state = self.cell(x.unsqueeze(0), self.state)
        return output[0]
