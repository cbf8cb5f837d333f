"""The built-in cells' `init`, `layer_norm` and `output_dropout` options."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import seqgen
from seqgen.seeding import dropout_generator, generator, initialize
from seqgen_plugins.cells import register_cells

CELLS = {}
register_cells(lambda name, factory, **_: CELLS.setdefault(name, factory))
PAIRS = [("rnn", "rnn-scratch"), ("gru", "gru-scratch"), ("lstm", "lstm-scratch")]
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
INITS = [{"type": "default"}, {"type": "normal", "std": 0.01}, {"type": "normal"},
         {"type": "uniform", "a": 0.1}, {"type": "xavier"}, {"type": "orthogonal"}]
SHAPE = {"hidden_size": 6, "num_layers": 2, "bidirectional": True}


def build(name, seed, **options):
    torch.manual_seed(seed)
    return CELLS[name](5, **options)


def state_dicts_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    return all(torch.equal(sa[k], sb[k]) for k in sa)


# -- init ------------------------------------------------------------------------------------

@pytest.mark.parametrize("init", INITS, ids=lambda i: "-".join(map(str, i.values())))
@pytest.mark.parametrize("fused, scratch", PAIRS)
def test_fused_and_scratch_draw_equal_weights_from_one_generator(fused, scratch, init):
    a, b = build(fused, 1, init=init, **SHAPE), build(scratch, 2, init=init, **SHAPE)
    for cell in (a, b):
        initialize(cell, generator(7, "init"))
    assert state_dicts_equal(a, b)                   # no copying: same draws, same order
    x = torch.randn(4, 3, 5)
    torch.testing.assert_close(a.eval()(x)[0], b.eval()(x)[0], atol=1e-5, rtol=0)
    again = build(fused, 3, init=init, **SHAPE)
    initialize(again, generator(8, "init"))
    assert not state_dicts_equal(a, again)           # another seed, other weights


@pytest.mark.parametrize("name", sorted(CELLS))
def test_initialize_draws_only_from_the_run_generator(name):
    cell = build(name, 0, init={"type": "orthogonal"}, hidden_size=4)
    before = torch.get_rng_state()
    initialize(cell, generator(0, "init"))
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("name", ["lstm", "gru-scratch"])
def test_default_init_draws_what_torch_default_drew(name):
    """The default keeps the numbers runs had before the option: U(-1/sqrt(H), 1/sqrt(H))
    over the parameters in torch's order, drawn once from the run's generator."""
    cell = build(name, 0, hidden_size=6, num_layers=2)
    initialize(cell, generator(3, "init"))
    g, bound = generator(3, "init"), 1 / math.sqrt(6)
    for p in cell.rnn.parameters():
        expected = torch.empty_like(p).uniform_(-bound, bound, generator=g)
        assert torch.equal(p, expected)


@pytest.mark.parametrize("fused, scratch", PAIRS)
def test_constructors_apply_the_init_too(fused, scratch):
    a = build(fused, 4, init={"type": "normal", "std": 0.5}, hidden_size=16)
    b = build(scratch, 4, init={"type": "normal", "std": 0.5}, hidden_size=16)
    assert state_dicts_equal(a, b)
    assert 0.4 < a.rnn.weight_hh_l0.std().item() < 0.6


def gate_blocks(w, H):
    return w.detach().split(H, 0)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_init_distributions(name):
    H, I = 8, 5
    family = name.split("-")[0]
    g = GATES[family]

    def weights(init):
        cell = build(name, 0, init=init, hidden_size=H, num_layers=2)
        initialize(cell, generator(1, "init"))
        return cell.rnn

    rnn = weights({"type": "uniform", "a": 0.05})
    assert rnn.weight_ih_l0.abs().max() <= 0.05 and rnn.weight_ih_l0.abs().max() > 0.03
    assert torch.count_nonzero(rnn.bias_ih_l0) == 0 and torch.count_nonzero(rnn.bias_hh_l1) == 0
    rnn = weights({"type": "normal", "std": 0.01})
    assert 0.005 < rnn.weight_hh_l0.std() < 0.015 and torch.count_nonzero(rnn.bias_hh_l0) == 0
    rnn = weights({"type": "xavier"})
    for w, fan_in in ((rnn.weight_ih_l0, I), (rnn.weight_hh_l0, H), (rnn.weight_ih_l1, H)):
        bound = math.sqrt(6 / (fan_in + H))
        assert w.abs().max() <= bound and w.abs().max() > bound / 2
    assert torch.count_nonzero(rnn.bias_ih_l0) == 0
    rnn = weights({"type": "orthogonal"})
    assert len(gate_blocks(rnn.weight_hh_l0, H)) == g
    for w in (rnn.weight_hh_l0, rnn.weight_hh_l1):
        for block in gate_blocks(w, H):
            torch.testing.assert_close(block @ block.t(), torch.eye(H), atol=1e-5, rtol=0)
    assert rnn.weight_ih_l0.abs().max() <= math.sqrt(6 / (I + H))
    assert torch.count_nonzero(rnn.bias_hh_l0) == 0
    rnn = weights({"type": "default"})
    assert rnn.bias_hh_l0.abs().max() > 0 and rnn.weight_hh_l0.abs().max() <= 1 / math.sqrt(H)


@pytest.mark.parametrize("init, message", [
    ({"type": "gaussian"}, "init must be an object whose type"),
    ({"type": "xavier", "std": 0.1}, "takes no std"),
    ({"type": "normal", "std": -1}, "std must be a positive number"),
    ("nonsense", "init must be"),
])
def test_bad_init_is_a_value_error(init, message):
    with pytest.raises(ValueError, match=message):
        CELLS["lstm"](5, init=init)


def test_init_in_a_spec(session, tiny_spec):
    tiny_spec["model"]["cell"]["init"] = {"type": "orthogonal"}
    assert session.resolve(tiny_spec)["model"]["cell"]["init"] == {"type": "orthogonal"}
    del tiny_spec["model"]["cell"]["init"]
    assert session.resolve(tiny_spec)["model"]["cell"]["init"] == {"type": "default"}
    for bad in ({"type": "xavier", "std": 0.1}, {"type": "normal", "std": 0},
                {"type": "gaussian"}, {"std": 0.1}):
        tiny_spec["model"]["cell"]["init"] = bad
        with pytest.raises(seqgen.SpecError) as info:
            session.resolve(tiny_spec)
        assert all(p.startswith("$.model.cell.init") for p in info.value.problems), bad


# -- layer_norm ------------------------------------------------------------------------------

def reference_lstm_ln(x, cell):
    """A plain loop: per layer, per step, each gate's pre-activation layer-normalised on
    its own; h = o * tanh(LN(c)), c carried unnormalised."""
    H = cell.hidden_size
    for layer in range(cell.num_layers):
        w_ih, w_hh, b_ih, b_hh = cell.layer_weights(layer)
        norms = cell.layer_norms[layer]
        h = torch.zeros(x.shape[1], H)
        c = torch.zeros(x.shape[1], H)
        outputs = []
        for x_t in x:
            pre = []
            for k in range(4):
                rows = slice(k * H, (k + 1) * H)
                a = x_t @ w_ih[rows].t() + b_ih[rows] + h @ w_hh[rows].t() + b_hh[rows]
                pre.append(F.layer_norm(a, (H,), norms.gate_weight[k], norms.gate_bias[k]))
            i, f, g, o = pre
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(
                F.layer_norm(c, (H,), norms.cell_weight, norms.cell_bias))
            outputs.append(h)
        x = torch.stack(outputs)
    return x


def reference_gru_ln(x, cell):
    """A plain loop: r, z and the candidate's pre-activations each layer-normalised."""
    H = cell.hidden_size
    for layer in range(cell.num_layers):
        w_ih, w_hh, b_ih, b_hh = cell.layer_weights(layer)
        norms = cell.layer_norms[layer]
        h = torch.zeros(x.shape[1], H)
        outputs = []
        for x_t in x:
            def part(k, v):
                rows = slice(k * H, (k + 1) * H)
                return (x_t @ w_ih[rows].t() + b_ih[rows], v @ w_hh[rows].t() + b_hh[rows])

            def ln(a, k):
                return F.layer_norm(a, (H,), norms.gate_weight[k], norms.gate_bias[k])
            r = torch.sigmoid(ln(sum(part(0, h)), 0))
            z = torch.sigmoid(ln(sum(part(1, h)), 1))
            x_n, h_n = part(2, h)
            n = torch.tanh(ln(x_n + r * h_n, 2))
            h = (1 - z) * n + z * h
            outputs.append(h)
        x = torch.stack(outputs)
    return x


@pytest.mark.parametrize("name, reference", [("lstm-scratch", reference_lstm_ln),
                                             ("gru-scratch", reference_gru_ln)])
def test_layer_norm_matches_a_plain_reference(name, reference):
    cell = build(name, 0, hidden_size=6, num_layers=2, layer_norm=True).eval()
    with torch.no_grad():   # gains and biases away from 1 and 0, so they count
        for p in cell.layer_norms.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = torch.randn(7, 3, 5)
    output, _ = cell(x)
    torch.testing.assert_close(output, reference(x, cell), atol=1e-5, rtol=0)
    plain = build(name, 0, hidden_size=6, num_layers=2)
    plain.load_state_dict(cell.state_dict(), strict=False)
    assert not torch.allclose(plain.eval()(x)[0], output, atol=1e-3)


@pytest.mark.parametrize("name", ["lstm-scratch", "gru-scratch"])
def test_layer_norm_parameters_start_at_one_and_zero_and_survive_initialize(name):
    cell = build(name, 0, hidden_size=4, bidirectional=True, layer_norm=True)
    initialize(cell, generator(0, "init"))
    assert len(cell.layer_norms) == 2
    for key, value in cell.state_dict().items():
        if key.startswith("layer_norms."):
            expected = 1.0 if key.endswith("weight") else 0.0
            assert torch.all(value == expected), key


@pytest.mark.parametrize("name, scratch", [("lstm", "lstm-scratch"), ("gru", "gru-scratch")])
def test_fused_cells_refuse_layer_norm(name, scratch, session, tiny_spec):
    with pytest.raises(ValueError, match=f'layer_norm needs the scratch cell: use "{scratch}"'):
        CELLS[name](5, layer_norm=True)
    CELLS[name](5, layer_norm=False)
    tiny_spec["model"]["cell"].update(type=name, layer_norm=True)
    with pytest.raises(seqgen.SpecError) as info:
        session.resolve(tiny_spec)
    assert info.value.problems == [
        f'$.model.cell.layer_norm: True is not allowed: layer_norm needs the scratch cell: '
        f'use "{scratch}"']
    tiny_spec["model"]["cell"]["type"] = scratch
    assert session.resolve(tiny_spec)["model"]["cell"]["layer_norm"] is True


def test_rnn_cells_have_no_layer_norm():
    for name in ("rnn", "rnn-scratch"):
        with pytest.raises(TypeError):
            CELLS[name](5, layer_norm=True)


# -- output_dropout --------------------------------------------------------------------------

@pytest.mark.parametrize("fused, scratch", PAIRS)
def test_output_dropout_draws_from_the_run_generator(fused, scratch):
    a = build(fused, 0, hidden_size=16, num_layers=2, output_dropout=0.5)
    b = build(scratch, 1, hidden_size=16, num_layers=2, output_dropout=0.5)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 4, 5)
    clean = a.eval()(x)[0]
    torch.testing.assert_close(b.eval()(x)[0], clean, atol=1e-5, rtol=0)
    a.train(), b.train()
    before = torch.get_rng_state()
    with dropout_generator(generator(0, "dropout")):
        dropped = a(x)[0]
    with dropout_generator(generator(0, "dropout")):
        dropped_b = b(x)[0]
    assert torch.equal(before, torch.get_rng_state())
    torch.testing.assert_close(dropped_b, dropped, atol=1e-5, rtol=0)   # the same mask
    zeros = dropped == 0
    assert 0.3 < zeros.float().mean() < 0.7
    torch.testing.assert_close(dropped[~zeros], 2 * clean[~zeros], atol=1e-5, rtol=0)
    assert a.explicit_randomness and b.explicit_randomness


def test_output_dropout_single_steps_in_training():
    """A fused cell's T=1 training steps under no_grad go through the kernels; the output
    is dropped once, as in the whole-sequence call."""
    cell = build("gru", 0, hidden_size=8, output_dropout=0.5).train()
    x = torch.randn(1, 3, 5)
    with torch.no_grad():
        with dropout_generator(generator(0, "dropout")):
            step = cell(x)[0]
        cell.kernel_max_batch = 0                     # now the module, not the kernels
        with dropout_generator(generator(0, "dropout")):
            whole = cell(x)[0]
    torch.testing.assert_close(step, whole, atol=1e-5, rtol=0)


def test_output_dropout_in_a_spec(session, tiny_spec):
    assert session.resolve(tiny_spec)["model"]["cell"]["output_dropout"] == 0.0
    tiny_spec["model"]["cell"]["output_dropout"] = 1.0
    with pytest.raises(seqgen.SpecError) as info:
        session.resolve(tiny_spec)
    assert info.value.problems[0].startswith("$.model.cell.output_dropout:")
