"""RecurrentCell.inspect against torch's reference modules, not against seqgen's own
recurrence code.

Per layer and direction, a one-layer unidirectional nn.RNN / nn.GRU / nn.LSTM gets the
cell's weights (rnn.weight_ih_l{k}{sfx}, ...) and the previous layer's reference output;
its outputs must equal inspect's "h". The gates are recomputed here from torch's weights
and the reference h_{t-1} by the equations in torch's nn.LSTM / nn.GRU docs.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqgen_plugins.cells.fused import FusedGRU, FusedLSTM, FusedRNN
from seqgen_plugins.cells.scratch_gru import ScratchGRU
from seqgen_plugins.cells.scratch_lstm import ScratchLSTM
from seqgen_plugins.cells.scratch_rnn import ScratchRNN

T, B, I, H = 7, 3, 5, 4
ATOL = 1e-5

# family -> (fused class, scratch class, torch reference class, options, keys in order)
FAMILIES = {
    "rnn_tanh": (FusedRNN, ScratchRNN, nn.RNN, {"nonlinearity": "tanh"}, ["h"]),
    "rnn_relu": (FusedRNN, ScratchRNN, nn.RNN, {"nonlinearity": "relu"}, ["h"]),
    "gru": (FusedGRU, ScratchGRU, nn.GRU, {}, ["r", "z", "n", "h"]),
    "lstm": (FusedLSTM, ScratchLSTM, nn.LSTM, {}, ["i", "f", "g", "o", "c", "h"]),
}
FORMS = {"fused": 0, "scratch": 1}


def build(family: str, form: str, seed: int = 0, **options):
    fused, scratch, _, extra, _ = FAMILIES[family]
    cls = (fused, scratch)[FORMS[form]]
    torch.manual_seed(seed)
    cell = cls(I, hidden_size=H, **{**extra, **options})
    cell.eval()
    return cell


def random_x(seed: int = 1) -> torch.Tensor:
    return torch.randn(T, B, I, generator=torch.Generator().manual_seed(seed))


def random_state(cell, seed: int = 2):
    """A non-zero state in torch's format: [L*D, B, H], or (h, c) for the LSTM."""
    g = torch.Generator().manual_seed(seed)
    shape = (cell.num_layers * cell.num_directions, B, H)
    h = torch.randn(shape, generator=g) * 0.5
    if isinstance(cell.rnn, nn.LSTM) or isinstance(cell, ScratchLSTM):
        return h, torch.randn(shape, generator=g) * 0.5
    return h


def layer_params(cell, layer: int, direction: int):
    sfx = f"_l{layer}" + ("_reverse" if direction else "")
    w_ih = getattr(cell.rnn, "weight_ih" + sfx).detach()
    w_hh = getattr(cell.rnn, "weight_hh" + sfx).detach()
    if cell.bias:
        b_ih = getattr(cell.rnn, "bias_ih" + sfx).detach()
        b_hh = getattr(cell.rnn, "bias_hh" + sfx).detach()
    else:
        b_ih = b_hh = None
    return w_ih, w_hh, b_ih, b_hh


def reference(family: str, cell, x: torch.Tensor, state=None) -> list[dict]:
    """Per layer*D + direction, from one-layer torch modules: {"h" [T, B, H] (text order),
    "run_input" [T, B, I_k] and "h_prev" [T, B, H] in the order the direction runs,
    "h0", "c0" [B, H], "h_n", "c_n" [B, H]}."""
    ref_class, extra = FAMILIES[family][2], FAMILIES[family][3]
    D = cell.num_directions
    is_lstm = ref_class is nn.LSTM
    if state is None:
        h_all = torch.zeros(cell.num_layers * D, B, H)
        c_all = torch.zeros_like(h_all)
    elif is_lstm:
        h_all, c_all = state
    else:
        h_all, c_all = state, None
    results = []
    layer_input = x
    for layer in range(cell.num_layers):
        outputs = []
        for direction in range(D):
            index = layer * D + direction
            module = ref_class(layer_input.shape[2], H, num_layers=1, bias=cell.bias,
                               **({"nonlinearity": extra["nonlinearity"]}
                                  if ref_class is nn.RNN else {}))
            w_ih, w_hh, b_ih, b_hh = layer_params(cell, layer, direction)
            with torch.no_grad():
                module.weight_ih_l0.copy_(w_ih)
                module.weight_hh_l0.copy_(w_hh)
                if cell.bias:
                    module.bias_ih_l0.copy_(b_ih)
                    module.bias_hh_l0.copy_(b_hh)
                run_input = layer_input if direction == 0 else layer_input.flip(0)
                h0 = h_all[index].unsqueeze(0)
                if is_lstm:
                    c0 = c_all[index].unsqueeze(0)
                    out_run, (h_n, c_n) = module(run_input, (h0, c0))
                else:
                    out_run, h_n = module(run_input, h0)
                    c_n = None
            h_prev = torch.cat([h0, out_run[:-1]])
            out_text = out_run if direction == 0 else out_run.flip(0)
            results.append({"h": out_text, "run_input": run_input, "h_prev": h_prev,
                            "h0": h0[0], "c0": c0[0] if is_lstm else None,
                            "h_n": h_n[0], "c_n": None if c_n is None else c_n[0],
                            "params": (w_ih, w_hh, b_ih, b_hh)})
            outputs.append(out_text)
        layer_input = torch.cat(outputs, 2)
    return results


def linear(x, w, b):
    return F.linear(x, w, b)


def expected_gates(family: str, ref: dict, direction: int, norms=None) -> dict:
    """Gates recomputed from torch's equations, in text order. `norms` (scratch
    layer_norm): LayerNorms whose gains and biases apply to each gate's pre-activation
    (and to c inside h for the LSTM)."""
    w_ih, w_hh, b_ih, b_hh = ref["params"]
    gi = linear(ref["run_input"], w_ih, b_ih)                # [T, B, G*H]
    gh = linear(ref["h_prev"], w_hh, b_hh)                   # [T, B, G*H]

    def ln(pre, k):
        if norms is None:
            return pre
        return (F.layer_norm(pre, (H,)) * norms.gate_weight[k].detach()
                + norms.gate_bias[k].detach())

    out = {}
    if family == "lstm":
        pre = (gi + gh).chunk(4, 2)
        i = torch.sigmoid(ln(pre[0], 0))
        f = torch.sigmoid(ln(pre[1], 1))
        g = torch.tanh(ln(pre[2], 2))
        o = torch.sigmoid(ln(pre[3], 3))
        c, cs, hs = ref["c0"], [], []
        for t in range(T):
            c = f[t] * c + i[t] * g[t]
            cs.append(c)
            inner = c if norms is None else F.layer_norm(
                c, (H,), norms.cell_weight.detach(), norms.cell_bias.detach())
            hs.append(o[t] * torch.tanh(inner))
        out = {"i": i, "f": f, "g": g, "o": o, "c": torch.stack(cs), "h": torch.stack(hs)}
    elif family == "gru":
        i_r, i_z, i_n = gi.chunk(3, 2)
        h_r, h_z, h_n = gh.chunk(3, 2)
        r = torch.sigmoid(ln(i_r + h_r, 0))
        z = torch.sigmoid(ln(i_z + h_z, 1))
        n = torch.tanh(ln(i_n + r * h_n, 2))
        out = {"r": r, "z": z, "n": n, "h": (1 - z) * n + z * ref["h_prev"]}
    if direction == 1:
        out = {k: v.flip(0) for k, v in out.items()}
    return out


def assert_close(actual, expected, what: str):
    assert actual.shape == expected.shape, f"{what}: {actual.shape} != {expected.shape}"
    diff = (actual - expected).abs().max().item()
    assert torch.allclose(actual, expected, atol=ATOL, rtol=0), f"{what}: max diff {diff}"


def check_against_reference(family: str, cell, x, state=None):
    layers = cell.inspect(x, state)
    refs = reference(family, cell, x, state)
    D = cell.num_directions
    keys = FAMILIES[family][4]
    assert isinstance(layers, list) and len(layers) == cell.num_layers * D
    for index, (got, ref) in enumerate(zip(layers, refs)):
        direction = index % D
        assert list(got) == keys, f"layer*D+dir {index}: keys {list(got)}"
        for name, value in got.items():
            assert value.shape == (T, B, H), f"{index} {name}: {value.shape}"
        assert_close(got["h"], ref["h"], f"{index} h vs torch module")
        # the final h in run order is torch's h_n
        last = got["h"][-1] if direction == 0 else got["h"][0]
        assert_close(last, ref["h_n"], f"{index} final h vs h_n")
        for name, value in expected_gates(family, ref, direction).items():
            assert_close(got[name], value, f"{index} {name} recomputed")
        if family == "lstm":
            final_c = got["c"][-1] if direction == 0 else got["c"][0]
            assert_close(final_c, ref["c_n"], f"{index} final c vs c_n")
    return layers


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_inspect_matches_torch_reference(family, form, num_layers, bidirectional):
    cell = build(family, form, num_layers=num_layers, bidirectional=bidirectional)
    check_against_reference(family, cell, random_x())


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_inspect_without_bias(family, form):
    cell = build(family, form, num_layers=2, bidirectional=True, bias=False)
    check_against_reference(family, cell, random_x())


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_fused_and_scratch_inspect_agree(family, bidirectional):
    fused = build(family, "fused", seed=3, num_layers=2, bidirectional=bidirectional)
    scratch = build(family, "scratch", seed=4, num_layers=2, bidirectional=bidirectional)
    x = random_x()
    before = scratch.inspect(x)
    scratch.load_state_dict(fused.state_dict())
    a, b = fused.inspect(x), scratch.inspect(x)
    assert len(a) == len(b) == 2 * fused.num_directions
    for index, (da, db) in enumerate(zip(a, b)):
        assert list(da) == list(db) == FAMILIES[family][4]
        for name in da:
            assert_close(db[name], da[name], f"{index} {name} fused vs scratch")
    # the loaded weights are what inspect used (different seeds gave different values)
    assert not torch.allclose(before[-1]["h"], b[-1]["h"], atol=1e-3)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_inspect_honours_initial_state(family, form, bidirectional):
    cell = build(family, form, num_layers=2, bidirectional=bidirectional)
    x = random_x()
    state = random_state(cell)
    layers = check_against_reference(family, cell, x, state)
    # and the state mattered: from zeros, the first step differs
    zero = cell.inspect(x)
    assert not torch.allclose(layers[0]["h"][0], zero[0]["h"][0], atol=1e-3)


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("family", ["gru", "lstm"])
def test_inspect_uses_learned_initial_state(family, form):
    cell = build(family, form, num_layers=2, bidirectional=True, initial_state="learned")
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        cell.h0.copy_(torch.randn(cell.h0.shape, generator=g) * 0.5)
        if family == "lstm":
            cell.c0.copy_(torch.randn(cell.c0.shape, generator=g) * 0.5)
    expanded = tuple(p.detach().expand(-1, B, -1).clone()
                     for p in ((cell.h0, cell.c0) if family == "lstm" else (cell.h0,)))
    state = expanded if family == "lstm" else expanded[0]
    got = cell.inspect(random_x())
    refs = reference(family, cell, random_x(), state)
    for index, (layer, ref) in enumerate(zip(got, refs)):
        assert_close(layer["h"], ref["h"], f"{index} h with learned initial state")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("family", ["gru", "lstm"])
def test_layer_norm_inspect(family, bidirectional):
    cell = build(family, "scratch", num_layers=2, bidirectional=bidirectional,
                 layer_norm=True)
    # gains and biases away from 1 and 0, so they show
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for p in cell.layer_norms.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    x = random_x()
    layers = cell.inspect(x)
    D = cell.num_directions
    output, state = cell(x)
    last = torch.cat([layers[-D + d]["h"] for d in range(D)], 2)
    assert_close(last, output.detach(), "last layer h vs forward output")
    h_n = state[0] if family == "lstm" else state
    for index, layer in enumerate(layers):
        final = layer["h"][-1] if index % D == 0 else layer["h"][0]
        assert_close(final, h_n[index].detach(), f"{index} final h vs forward state")
    sigmoid_gates = {"lstm": ["i", "f", "o"], "gru": ["r", "z"]}[family]
    tanh_gate = {"lstm": "g", "gru": "n"}[family]
    for index, layer in enumerate(layers):
        assert list(layer) == FAMILIES[family][4]
        for name in sigmoid_gates:
            assert layer[name].min() >= 0 and layer[name].max() <= 1, (index, name)
        assert layer[tanh_gate].min() >= -1 and layer[tanh_gate].max() <= 1, index
        assert layer["h"].abs().max() <= 1, index
    # the gates follow torch's equations with layer normalisation of each pre-activation
    refs = reference_with_inputs(family, cell, x, layers)
    for index, (layer, ref) in enumerate(zip(layers, refs)):
        expected = expected_gates(family, ref, index % D, norms=cell.layer_norms[index])
        for name, value in expected.items():
            assert_close(layer[name], value, f"{index} {name} layer-norm recomputed")


def reference_with_inputs(family, cell, x, layers):
    """run_input / h_prev / c0 per layer and direction, taken from inspect's own h (the
    torch modules have no layer norm); enough to recompute the gates of each step."""
    D = cell.num_directions
    refs = []
    layer_input = x
    zeros = torch.zeros(B, H)
    for layer in range(cell.num_layers):
        for direction in range(D):
            index = layer * D + direction
            h_text = layers[index]["h"]
            run_input = layer_input if direction == 0 else layer_input.flip(0)
            h_run = h_text if direction == 0 else h_text.flip(0)
            refs.append({"run_input": run_input,
                         "h_prev": torch.cat([zeros.unsqueeze(0), h_run[:-1]]),
                         "c0": zeros, "params": layer_params(cell, layer, direction)})
        layer_input = torch.cat([layers[layer * D + d]["h"] for d in range(D)], 2)
    return refs


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_inspect_in_train_mode_no_dropout_no_grad(family, form):
    cell = build(family, form, num_layers=2, bidirectional=True, dropout=0.5,
                 output_dropout=0.3)
    x = random_x().requires_grad_(True)
    expected = cell.inspect(x)           # eval mode
    assert cell.training is False
    cell.train()
    first = cell.inspect(x)
    second = cell.inspect(x)
    assert cell.training is True
    assert all(m.training for m in cell.modules())
    for index, (e, a, b) in enumerate(zip(expected, first, second)):
        assert list(a) == list(e) == list(b)
        for name in a:
            assert a[name].requires_grad is False and a[name].grad_fn is None, (index, name)
            assert torch.equal(a[name], b[name]), f"{index} {name} not deterministic"
            assert_close(a[name], e[name], f"{index} {name} train vs eval")
    # eval-mode values are torch's (no dropout between layers)
    cell.eval()
    check_against_reference(family, cell, x.detach())
    assert cell.training is False
    # and dropout is really on in this cell's training forward, so the checks above bite
    cell.train()
    torch.manual_seed(7)
    output, _ = cell(x.detach())
    last = torch.cat([first[-2]["h"], first[-1]["h"]], 2)
    assert not torch.allclose(output.detach(), last, atol=1e-3)
