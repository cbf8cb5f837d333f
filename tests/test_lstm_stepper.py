"""Generation's LSTM stepper (plugins/cells/lstm_stepper.py): nn.LSTM's numbers, and when
FusedLSTM hands it out."""
from __future__ import annotations

import pytest
import torch

from seqgen import Stepper
from seqgen_plugins.cells.fused import FusedLSTM
from seqgen_plugins.cells.lstm_stepper import MAX_BATCH, LSTMStepper
from seqgen_plugins.cells.step import LayerStepper


def lstm(layers=2, bias=True, dtype=torch.float32, **options):
    torch.manual_seed(0)
    return FusedLSTM(5, hidden_size=8, num_layers=layers, bias=bias, **options).to(dtype).eval()


def random_state(cell, batch, dtype=torch.float32):
    h = torch.randn(cell.num_layers, batch, 8, dtype=dtype)
    return h, torch.randn_like(h)


@pytest.mark.parametrize("blocks", [1, 2, 4])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layers,bias", [(1, True), (3, True), (2, False)])
def test_steps_give_nn_lstm_numbers(blocks, batch, layers, bias):
    cell = lstm(layers, bias)
    x = torch.randn(7, batch, 5)
    state = random_state(cell, batch)
    with torch.inference_mode():
        want, (want_h, want_c) = cell.rnn(x, state)                      # oneDNN, one call
        step = LSTMStepper(cell, state, blocks)
        got = torch.stack([step(x_t) for x_t in x])
        got_h, got_c = step.state
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_h, want_h, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_c, want_c, atol=1e-6, rtol=0)


def test_float64_weights_keep_float64_precision():
    cell = lstm(dtype=torch.float64)
    x = torch.randn(5, 2, 5, dtype=torch.float64)
    state = random_state(cell, 2, torch.float64)
    with torch.inference_mode():
        want, _ = cell.rnn(x, state)
        step = LSTMStepper(cell, state, 2)
        got = torch.stack([step(x_t) for x_t in x])
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_learned_initial_state_and_strided_inputs():
    """An expanded (stride-0) learned state and a non-contiguous input are read correctly."""
    cell = lstm(initial_state="learned")
    with torch.no_grad():
        cell.h0.normal_()
        cell.c0.normal_()
    x = torch.randn(4, 5, 3).transpose(1, 2)                             # [T=4, B=3, 5], strided
    with torch.inference_mode():
        state = cell.initial_state(3)
        want, _ = cell.rnn(x, state)
        step = LSTMStepper(cell, state, 2)
        got = torch.stack([step(x_t) for x_t in x])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_outputs_and_states_are_copies_the_next_step_leaves_alone():
    cell = lstm()
    with torch.inference_mode():
        step = LSTMStepper(cell, cell.initial_state(2), 2)
        first = step(torch.randn(2, 5))
        kept, (h, c) = first.clone(), step.state
        h_kept, c_kept = h.clone(), c.clone()
        step(torch.randn(2, 5))
    assert torch.equal(first, kept)
    assert torch.equal(h, h_kept) and torch.equal(c, c_kept)
    assert not torch.equal(step.state[0], h_kept)                     # while the stepper moved on


def test_inference_on_cpu_gets_the_lstm_stepper(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    cell = lstm()
    with torch.inference_mode():
        assert isinstance(cell.stepper(random_state(cell, MAX_BATCH)), LSTMStepper)
    with torch.no_grad():
        assert isinstance(cell.stepper(random_state(cell, 1)), LSTMStepper)


@pytest.mark.parametrize("threads,blocks", [(1, 1), (2, 2), (3, 2), (8, 4)])
def test_one_block_of_gate_rows_per_thread_up_to_four(threads, blocks, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    cell = lstm()
    with torch.inference_mode():
        stepper = cell.stepper(random_state(cell, 1))
    assert stepper.layers[0].w.shape[0] == blocks


@pytest.mark.parametrize("case", ["autograd", "training", "bidirectional", "big batch"])
def test_other_cases_step_another_way(case):
    """Where the buffered stepper does not apply (it writes in place, so no autograd; one
    direction; small batches), the cell steps through kernels or the module."""
    cell = lstm(bidirectional=case == "bidirectional").train(case == "training")
    batch = MAX_BATCH + 1 if case == "big batch" else 2
    h = torch.randn(cell.num_layers * cell.num_directions, batch, 8)
    with torch.set_grad_enabled(case == "autograd"):
        with torch.inference_mode(case != "autograd"):
            stepper = cell.stepper((h, torch.randn_like(h)))
    expected = Stepper if case == "big batch" else LayerStepper
    assert type(stepper) is expected


def test_above_max_batch_single_steps_run_the_module(monkeypatch):
    cell = lstm()
    calls = []
    forward = cell.rnn.forward
    monkeypatch.setattr(cell.rnn, "forward", lambda *a, **k: calls.append(1) or forward(*a, **k))
    with torch.inference_mode():
        cell(torch.randn(1, MAX_BATCH + 1, 5))
        assert calls == [1]
        cell(torch.randn(1, MAX_BATCH, 5))
        assert calls == [1]


# -- fold_input: the embedding taken through layer 1's input weights once -----------------

@pytest.mark.parametrize("blocks", [1, 2, 4])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layers,bias", [(1, True), (3, True), (2, False)])
def test_folded_steps_give_nn_lstm_numbers_on_embedded_ids(blocks, batch, layers, bias):
    cell = lstm(layers, bias)
    table = torch.randn(9, 5)                                          # [V=9, I=5]
    ids = torch.randint(0, 9, (7, batch))
    state = random_state(cell, batch)
    with torch.inference_mode():
        want, (want_h, want_c) = cell.rnn(table[ids], state)
        stepper = LSTMStepper(cell, state, blocks)
        step_ids = stepper.fold_input(table)
        got = torch.stack([step_ids(ids_t).clone() for ids_t in ids])
        got_h, got_c = stepper.state
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_h, want_h, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_c, want_c, atol=1e-6, rtol=0)


def test_fold_input_declines_large_vocabularies_and_other_widths():
    cell = lstm()
    with torch.inference_mode():
        stepper = LSTMStepper(cell, random_state(cell, 1), 1)
        assert stepper.fold_input(torch.randn(11, 5)) is None           # V > 2 I
        assert stepper.fold_input(torch.randn(4, 6)) is None            # not the input width
        assert stepper.fold_input(torch.randn(10, 5)) is not None


def test_the_token_stepper_folds_a_plain_embedding_and_keeps_the_numbers():
    """The model's token stepper (generation) folds; its logits match the unfolded path."""
    import seqgen
    session = seqgen.Session(entry_points=False)
    spec = session.resolve({"dataset": {"type": "synthetic"},
                            "model": {"embedding": {"type": "learned", "size": 16},
                                      "cell": {"type": "lstm", "hidden_size": 8,
                                               "num_layers": 2}}})
    model = session.build_model(spec, 20).eval()
    ids = torch.randint(0, 20, (12, 2))
    with torch.inference_mode():
        state = model.initial_state(2)
        want, _ = model(ids, state)                                      # [T, B, V]
        stepper = model.stepper(state)
        assert stepper.step_ids is not None
        got = torch.stack([stepper(ids_t) for ids_t in ids])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_folded_and_plain_steps_share_the_state():
    """step_ids and calling the stepper with embedded rows may be mixed: one state."""
    cell = lstm(2)
    table = torch.randn(9, 5)
    ids = torch.randint(0, 9, (6, 2))
    state = random_state(cell, 2)
    with torch.inference_mode():
        want, _ = cell.rnn(table[ids], state)
        stepper = LSTMStepper(cell, state, 2)
        step_ids = stepper.fold_input(table)
        got = [step_ids(ids_t).clone() if t % 2 else stepper(table[ids_t])
               for t, ids_t in enumerate(ids)]
    torch.testing.assert_close(torch.stack(got), want, atol=1e-6, rtol=0)
