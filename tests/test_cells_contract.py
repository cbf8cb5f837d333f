"""seqgen.testing.cells.check_cell: every built-in passes it, and it catches broken cells."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from seqgen_plugins.cells import register_cells
from seqgen_plugins.cells.fused import FusedLSTM, FusedRNN
from seqgen_plugins.cells.scratch_gru import ScratchGRU
from seqgen_plugins.cells.scratch_rnn import ScratchRNN
from seqgen.testing.cells import check_cell

CELLS = {}
register_cells(lambda name, factory, **_: CELLS.setdefault(name, factory))

OPTIONS = [
    {"hidden_size": 8},
    {"hidden_size": 8, "num_layers": 2},
    {"hidden_size": 8, "bidirectional": True},
    {"hidden_size": 8, "initial_state": "learned"},
    {"hidden_size": 8, "num_layers": 2, "bidirectional": True, "initial_state": "learned",
     "bias": False, "dropout": 0.3},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_builtin_cell_keeps_the_contract(name, options):
    check_cell(CELLS[name], options=options)


NEW_OPTIONS = [
    {"hidden_size": 8, "init": {"type": "orthogonal"}, "output_dropout": 0.3},
    {"hidden_size": 8, "num_layers": 2, "init": {"type": "xavier"}, "output_dropout": 0.5,
     "initial_state": "learned"},
    {"hidden_size": 8, "bidirectional": True, "init": {"type": "normal", "std": 0.1},
     "output_dropout": 0.2},
    {"hidden_size": 8, "init": {"type": "uniform", "a": 0.2}, "bias": False},
]
LAYER_NORM_OPTIONS = [
    {"hidden_size": 8, "layer_norm": True},
    {"hidden_size": 8, "num_layers": 2, "layer_norm": True, "dropout": 0.3,
     "output_dropout": 0.3, "init": {"type": "orthogonal"}},
    {"hidden_size": 8, "bidirectional": True, "layer_norm": True, "initial_state": "learned"},
    {"hidden_size": 8, "num_layers": 2, "layer_norm": True, "bias": False},
]


def _ids(options):
    return "-".join(f"{k}={v}" for k, v in options.items())


@pytest.mark.parametrize("options", NEW_OPTIONS, ids=_ids)
@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_builtin_cell_keeps_the_contract_with_init_and_output_dropout(name, options):
    check_cell(CELLS[name], options=options)


@pytest.mark.parametrize("options", LAYER_NORM_OPTIONS, ids=_ids)
@pytest.mark.parametrize("name", ["lstm-scratch", "gru-scratch"])
def test_layer_norm_cells_keep_the_contract(name, options):
    check_cell(CELLS[name], options=options)


def test_check_cell_leaves_the_global_rng_alone():
    before = torch.get_rng_state()
    check_cell(CELLS["lstm"], options={"hidden_size": 4})
    assert torch.equal(torch.get_rng_state(), before)


# Cells that each break one property of the contract.

class NotACell(nn.Module):
    def __init__(self, input_size, **options):
        super().__init__()
        self.rnn = nn.LSTM(input_size, 8)


class TimeMajorIgnored(FusedLSTM):
    def forward(self, x, state=None, lengths=None):
        output, state = super().forward(x, state, lengths)
        return output.transpose(0, 1), state  # [B, T, H]


class DefaultStateIsNotInitialState(ScratchGRU):
    def forward(self, x, state=None, lengths=None):
        if state is None:
            state = self.initial_state(x.shape[1]) + 1
        return super().forward(x, state, lengths)


class IgnoresState(ScratchGRU):
    def forward(self, x, state=None, lengths=None):
        return super().forward(x, None, lengths)


class ForgetsStateWhenStepping(FusedLSTM):
    def forward(self, x, state=None, lengths=None):
        return super().forward(x, None if x.shape[0] == 1 else state, lengths)


class StepperDropsTheState(FusedLSTM):
    """Its T=1 calls are right; only the stepper generation uses starts from zeros."""
    def stepper(self, state):
        return super().stepper(tuple(torch.zeros_like(s) for s in state))


class StepperStateOutOfShape(FusedLSTM):
    def stepper(self, state):
        inner = super().stepper(state)

        class Flat:  # returns (h, c) as [B, L*H]: the numbers, in the wrong layout
            def __call__(self, x):
                return inner(x)

            @property
            def state(self):
                return tuple(s.transpose(0, 1).flatten(1) for s in inner.state)
        return Flat()


class SeedsItsOwnWeights(ScratchRNN):
    def __init__(self, input_size, **options):
        super().__init__(input_size, **options)
        with torch.no_grad():
            self.rnn.weight_hh_l0.add_(random.random())  # Python's RNG, not torch's


class UnusedParameter(FusedRNN):
    def __init__(self, input_size, **options):
        super().__init__(input_size, **options)
        self.scale = nn.Parameter(torch.ones(1))


class IgnoresLengths(FusedLSTM):
    def forward(self, x, state=None, lengths=None):
        return super().forward(x, state)


class LastStepStateWithLengths(ScratchGRU):
    """Zeroes padded outputs but returns the state after step T, not the row's last."""
    def forward(self, x, state=None, lengths=None):
        output, _ = super().forward(x, state, lengths)
        return output, super().forward(x, state)[1]


class ClaimsExplicitRandomnessButUsesTorchDropout(ScratchGRU):
    """Says it draws only through seqgen.dropout, then drops out with torch's global RNG."""
    def forward(self, x, state=None, lengths=None):
        output, state = super().forward(x, state, lengths)
        return torch.nn.functional.dropout(output, 0.5, self.training), state


@pytest.mark.parametrize("factory, broken", [
    (ClaimsExplicitRandomnessButUsesTorchDropout, "randomness"),
    (NotACell, "type"),
    (TimeMajorIgnored, "shapes"),
    (DefaultStateIsNotInitialState, "initial_state"),
    (IgnoresState, "state"),
    (ForgetsStateWhenStepping, "stepping"),
    (StepperDropsTheState, "stepping"),
    (StepperStateOutOfShape, "stepping"),
    (SeedsItsOwnWeights, "determinism"),
    (UnusedParameter, "gradients"),
    (IgnoresLengths, "lengths"),
    (LastStepStateWithLengths, "lengths"),
])
def test_check_cell_names_the_broken_property(factory, broken):
    with pytest.raises(AssertionError, match=rf"^cell contract '{broken}' failed for {factory.__name__}"):
        check_cell(factory, options={"hidden_size": 8})
