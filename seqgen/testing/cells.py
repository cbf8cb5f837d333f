"""Contract checks for cell plugins.

A plugin author holds a cell to the rules of `seqgen.Cell` (the ones the built-in cells
pass) with one call in their own tests:

    from seqgen.testing.cells import check_cell

    def test_my_cell_keeps_the_contract():
        check_cell(MyCell, options={"hidden_size": 8, "num_layers": 2})

Each property is checked on tiny sizes (T=6, B=4, H from the options) with the cell in
eval mode, except gradients (train mode). A broken property raises AssertionError whose
message starts with its name, e.g. "cell contract 'lengths' failed ...".
"""
from __future__ import annotations

from functools import partial

import torch

from ..cell import Cell
from ..state import State, map_state
from .contract import contract_property

STEPS, BATCH = 6, 4
# Unsorted; one full row and one of a single step, then all shorter than T (output must
# still have T steps).
LENGTHS = ((6, 3, 1, 5), (4, 2, 1, 3))


def check_cell(factory, *, input_size: int = 5, options: dict | None = None, seed: int = 0,
               atol: float = 1e-5) -> None:
    """Build `factory(input_size, **options)` and check every contract property.

    Properties: "type", "shapes", "initial_state", "state" (a returned state passed back
    continues the sequence; skipped for bidirectional cells, which only must use it),
    "stepping" (T calls with T=1, and T calls of `cell.stepper`, equal one call;
    unidirectional, under no_grad and inference_mode as in generation), "determinism" (same seed, same weights and outputs), "gradients"
    (every parameter and the input get a finite, non-zero gradient) and "lengths"
    (padded rows: zero outputs past their length, outputs and state equal to running
    the row alone), and "randomness" (a cell that sets `explicit_randomness` leaves
    torch's global generator untouched when training, and gives equal outputs for equal
    run generators; see seqgen/seeding.py), and "inspect" for a cell that overrides
    `Cell.inspect` (one dict of [T, B, H] tensors per layer and direction; an "h" of
    the last layer equals the output, and for a unidirectional cell the last step's
    "h" equals the final state). Outputs are compared with `atol` (float32).
    The global RNG is left as it was.
    """
    options = dict(options or {})
    label = f"{getattr(factory, '__name__', factory)}(input_size={input_size}, **{options})"
    build = partial(_build, factory, input_size, options, seed)
    close = partial(torch.testing.assert_close, atol=atol, rtol=0)
    with torch.random.fork_rng():
        torch.manual_seed(seed + 1)
        x = torch.randn(STEPS, BATCH, input_size)
        with _property("type", label):
            cell = build()
            assert isinstance(cell, Cell), f"factory returned {type(cell).__name__}, not a seqgen.Cell"
            assert cell.input_size == input_size, f"input_size is {cell.input_size}, not {input_size}"
            cell.eval()
        with _property("shapes", label):
            _check_shapes(cell, x)
        with _property("initial_state", label):
            _check_initial_state(cell, x, close)
        with _property("state", label):
            _check_state(cell, x, close)
        if not cell.bidirectional:
            with _property("stepping", label):
                _check_stepping(cell, x, close)
        with _property("determinism", label):
            _check_determinism(cell, build().eval(), x)
        with _property("gradients", label):
            _check_gradients(cell, x)
        with _property("lengths", label):
            _check_lengths(cell, x, close)
        with _property("randomness", label):
            _check_randomness(cell, x, seed)
        with _property("inspect", label):
            _check_inspect(cell, x, close)


def _check_inspect(cell: Cell, x: torch.Tensor, close) -> None:
    layers = cell.inspect(x)
    if layers is None:
        return                          # not exposed: inspection records states instead
    count = cell.num_layers * cell.num_directions
    assert isinstance(layers, list) and len(layers) == count, (
        f"inspect returned {type(layers).__name__} of {len(layers) if isinstance(layers, list) else '?'} "
        f"entries, expected a list of {count} (one per layer and direction)")
    expected = (STEPS, BATCH, cell.hidden_size)
    for index, series in enumerate(layers):
        assert isinstance(series, dict) and series, f"inspect entry {index} is not a non-empty dict"
        for name, value in series.items():
            assert isinstance(name, str), f"inspect entry {index} has a key {name!r}, not a string"
            assert isinstance(value, torch.Tensor) and tuple(value.shape) == expected, (
                f"inspect entry {index} {name!r} has shape "
                f"{tuple(getattr(value, 'shape', ()))}, expected {expected}")
    if all("h" in series for series in layers):
        output, state = cell(x)
        last = [series["h"] for series in layers[-cell.num_directions:]]
        close(torch.cat(last, 2), output,
              msg=lambda m: f"inspect's last-layer 'h' differs from the output: {m}")
        if not cell.bidirectional:
            h = torch.stack([series["h"][-1] for series in layers])      # [L, B, H]
            close(h, _tensors(state)[0],
                  msg=lambda m: f"inspect's last-step 'h' differs from the final state: {m}")


def _check_randomness(cell: Cell, x: torch.Tensor, seed: int) -> None:
    from ..seeding import dropout_generator, generator
    if not cell.explicit_randomness:
        return                 # the trainer seeds and restores the global generator for it
    cell.train()
    try:
        outputs = []
        for _ in range(2):
            before = torch.get_rng_state()
            with dropout_generator(generator(seed, "dropout")):
                outputs.append(cell(x)[0].detach())
            assert torch.equal(before, torch.get_rng_state()), (
                "explicit_randomness is set, but training drew from torch's global generator "
                "(use seqgen.dropout, not torch.nn.functional.dropout)")
        assert torch.equal(*outputs), "equal run generators gave different training outputs"
    finally:
        cell.eval()


def _build(factory, input_size: int, options: dict, seed: int) -> Cell:
    torch.manual_seed(seed)
    return factory(input_size, **options)


def _property(name: str, label: str):
    return contract_property("cell", name, label)


def _tensors(state: State) -> list[torch.Tensor]:
    found = []
    map_state(found.append, state)
    return found


def _state_layout(cell: Cell, state: State, batch: int) -> None:
    """Every tensor of `state` is [L*D, batch, H], structured like initial_state's."""
    expected = (cell.num_layers * cell.num_directions, batch, cell.hidden_size)
    reference = cell.initial_state(batch)
    assert type(state) is type(reference) and len(_tensors(state)) == len(_tensors(reference)), (
        f"state is a {type(state).__name__} of {len(_tensors(state))} tensor(s); "
        f"initial_state gives a {type(reference).__name__} of {len(_tensors(reference))}")
    for t in _tensors(state):
        assert tuple(t.shape) == expected, f"state tensor has shape {tuple(t.shape)}, expected {expected}"


def _check_shapes(cell: Cell, x: torch.Tensor) -> None:
    assert cell.output_size == cell.hidden_size * cell.num_directions, (
        f"output_size {cell.output_size} != hidden_size * num_directions")
    output, state = cell(x)
    expected = (STEPS, BATCH, cell.output_size)
    assert tuple(output.shape) == expected, f"output has shape {tuple(output.shape)}, expected {expected}"
    assert output.dtype == x.dtype, f"output dtype {output.dtype} differs from input {x.dtype}"
    _state_layout(cell, state, BATCH)


def _check_initial_state(cell: Cell, x: torch.Tensor, close) -> None:
    for batch in (1, 3):
        _state_layout(cell, cell.initial_state(batch), batch)
    _state_layout(cell, cell.initial_state(2, x.device), 2)
    implicit, explicit = cell(x), cell(x, cell.initial_state(BATCH))
    close(explicit[0], implicit[0], msg=lambda m: f"state=None differs from initial_state(B): {m}")


def _check_state(cell: Cell, x: torch.Tensor, close) -> None:
    other = map_state(lambda t: t + torch.randn_like(t), cell.initial_state(BATCH))
    moved = (cell(x, other)[0] - cell(x)[0]).abs().max().item()
    assert moved > 1e-4, "the output does not depend on the state passed in"
    if cell.bidirectional:
        return
    output, state = cell(x)
    first, carried = cell(x[:3])
    second, carried = cell(x[3:], carried)
    close(torch.cat([first, second]), output,
          msg=lambda m: f"passing the returned state back does not continue the sequence: {m}")
    for got, want in zip(_tensors(carried), _tensors(state)):
        close(got, want, msg=lambda m: f"final state after two calls differs from one call: {m}")


def _check_stepping(cell: Cell, x: torch.Tensor, close) -> None:
    with torch.no_grad():
        output, state = cell(x)
        steps, carried = [], None
        for t in range(STEPS):
            step, carried = cell(x[t:t + 1], carried)
            steps.append(step)
    close(torch.cat(steps), output,
          msg=lambda m: f"T calls with T=1 carrying the state differ from one call: {m}")
    for got, want in zip(_tensors(carried), _tensors(state)):
        close(got, want, msg=lambda m: f"final state after T single steps differs: {m}")
    with torch.inference_mode():  # as generation runs it: prime with a call, then step
        _, primed = cell(x[:2])
        stepper = cell.stepper(primed)
        outputs = [stepper(x_t).clone() for x_t in x[2:]]
        final = stepper.state
    close(torch.stack(outputs), output[2:],
          msg=lambda m: f"cell.stepper's outputs differ from one call: {m}")
    _state_layout(cell, final, x.shape[1])
    for got, want in zip(_tensors(final), _tensors(state)):
        close(got, want, msg=lambda m: f"cell.stepper's final state differs from one call: {m}")


def _check_determinism(cell: Cell, twin: Cell, x: torch.Tensor) -> None:
    mine, theirs = cell.state_dict(), twin.state_dict()
    assert list(mine) == list(theirs), "two builds have different state-dict keys"
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), (
            f"two builds under the same torch.manual_seed differ in {key!r}")
    assert torch.equal(cell(x)[0], twin(x)[0]), "two identical builds give different outputs"
    assert torch.equal(cell(x)[0], cell(x)[0]), "two eval-mode calls give different outputs"


def _check_gradients(cell: Cell, x: torch.Tensor) -> None:
    cell.train()
    try:
        x = x.clone().requires_grad_(True)
        output, state = cell(x)
        # Random weights so no gradient cancels by symmetry; the state counts too.
        loss = (output * torch.randn_like(output)).sum()
        for t in _tensors(state):
            loss = loss + (t * torch.randn_like(t)).sum()
        cell.zero_grad()
        loss.backward()
    finally:
        cell.eval()
    for name, p in [("input x", x), *cell.named_parameters()]:
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"no gradient reaches {name!r}"
        assert torch.isfinite(p.grad).all(), f"gradient of {name!r} is not finite"
        assert p.grad.abs().sum() > 0, f"gradient of {name!r} is all zeros"


def _check_lengths(cell: Cell, x: torch.Tensor, close) -> None:
    for lengths in LENGTHS:
        output, state = cell(x, lengths=torch.tensor(lengths))
        assert tuple(output.shape) == (STEPS, BATCH, cell.output_size), (
            f"padded output has shape {tuple(output.shape)} for lengths {lengths}")
        _state_layout(cell, state, BATCH)
        for row, length in enumerate(lengths):
            assert torch.count_nonzero(output[length:, row]) == 0, (
                f"row {row} (length {length}) has non-zero outputs past its length")
            alone, alone_state = cell(x[:length, row:row + 1])
            close(output[:length, row], alone[:, 0],
                  msg=lambda m: f"row {row} (length {length}) differs from running it alone: {m}")
            for got, want in zip(_tensors(state), _tensors(alone_state)):
                close(got[:, row], want[:, 0], msg=lambda m: (
                    f"state of row {row} is not its state after its last step ({length}): {m}"))
