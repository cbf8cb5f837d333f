"""Generation's rules: T single steps equal one call, and the fused cells' fast step."""
from __future__ import annotations

import pytest
import torch

from seqgen_plugins.cells import gru_cpu
from seqgen_plugins.cells import register_cells
from seqgen_plugins.cells.fused import FusedGRU, FusedLSTM, FusedRNN

CELLS = {}
register_cells(lambda name, factory, **_: CELLS.setdefault(name, factory))
close = dict(atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["generate", "train"])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_single_steps_carrying_state_equal_one_call(name, mode):
    """generate: eval + no_grad (the fused fast path); train: autograd on, dropout 0."""
    torch.manual_seed(0)
    cell = CELLS[name](5, hidden_size=8, num_layers=2, initial_state="learned")
    with torch.no_grad():  # a non-zero learned state, so carrying it matters
        cell.h0.normal_()
    x = torch.randn(6, 3, 5)
    cell.train(mode == "train")
    with torch.set_grad_enabled(mode == "train"):
        want, want_state = cell(x)
        steps, state = [], None
        for t in range(6):
            output, state = cell(x[t:t + 1], state)
            steps.append(output)
    torch.testing.assert_close(torch.cat(steps), want, **close)
    torch.testing.assert_close(state, want_state, **close)


FUSED = {"rnn-tanh": (FusedRNN, {}), "rnn-relu": (FusedRNN, {"nonlinearity": "relu"}),
         "gru": (FusedGRU, {}), "lstm": (FusedLSTM, {})}


def refuse_module(cell, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the torch module ran instead of the single-step kernels")
    monkeypatch.setattr(cell.rnn, "forward", fail)


@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("family", FUSED)
def test_fused_fast_step_gives_the_modules_numbers(family, bidirectional, grad, monkeypatch):
    factory, extra = FUSED[family]
    torch.manual_seed(1)
    cell = factory(5, hidden_size=8, num_layers=3, bidirectional=bidirectional, **extra).eval()
    x = torch.randn(1, 2, 5)
    h = torch.randn(3 * cell.num_directions, 2, 8)
    state = (h, torch.randn_like(h)) if cell.has_cell_state else h
    with torch.set_grad_enabled(grad):
        want, want_state = cell.rnn(x, state)  # the oneDNN module path
        refuse_module(cell, monkeypatch)
        got, got_state = cell(x, state)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    torch.testing.assert_close(got_state, want_state, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", FUSED)
def test_training_with_autograd_uses_the_module(family, monkeypatch):
    factory, extra = FUSED[family]
    cell = factory(5, hidden_size=8, **extra).train()
    refuse_module(cell, monkeypatch)
    # (the GRU trains through its own kernel where it applies: tests/test_gru_cpu.py)
    monkeypatch.setattr(gru_cpu, "applies", lambda *args: False)
    with pytest.raises(AssertionError, match="the torch module ran"):
        cell(torch.randn(1, 2, 5))
    with pytest.raises(AssertionError, match="the torch module ran"):
        cell.eval()(torch.randn(1, 2, 5), lengths=torch.tensor([1, 1]))


@pytest.mark.parametrize("embedding", ["one-hot", "learned"])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_model_stepper_gives_the_whole_sequence_logits(name, embedding):
    """What generation runs per token: LanguageModel.stepper, primed like generation."""
    from seqgen.model import LanguageModel, make_embedding
    torch.manual_seed(0)
    spec = {"type": embedding, "size": 6}
    embed = make_embedding(11, spec)
    cell = CELLS[name](embed.embedding_dim, hidden_size=8, num_layers=2)
    model = LanguageModel(11, cell, embed).eval()
    ids = torch.randint(0, 11, (9, 3))                                    # [T, B]
    with torch.inference_mode():
        want, want_state = model(ids)
        _, primed = model(ids[:4])
        step = model.stepper(primed)
        got = torch.stack([step(ids_t) for ids_t in ids[4:]])             # [T-4, B, V]
        got_state = step.state
    torch.testing.assert_close(got, want[4:], **close)
    torch.testing.assert_close(got_state, want_state, **close)
