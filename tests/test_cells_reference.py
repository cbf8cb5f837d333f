"""Every built-in cell against torch's reference module with the same weights.

Outputs, final states and all gradients (weights, input, initial state) agree within
1e-5 in float32, for 1 and 3 layers, one and two directions, batch 1 and 7, in eval and
train mode (dropout 0), and on padded batches against pack_padded_sequence.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqgen_plugins.cells.fused import FusedGRU, FusedLSTM, FusedRNN
from seqgen_plugins.cells.scratch_gru import ScratchGRU
from seqgen_plugins.cells.scratch_lstm import ScratchLSTM
from seqgen_plugins.cells.scratch_rnn import ScratchRNN

INPUT, HIDDEN, STEPS = 5, 8, 6
# family -> (fused, scratch, torch reference, extra options)
FAMILIES = {
    "rnn-tanh": (FusedRNN, ScratchRNN, nn.RNN, {}),
    "rnn-relu": (FusedRNN, ScratchRNN, nn.RNN, {"nonlinearity": "relu"}),
    "gru": (FusedGRU, ScratchGRU, nn.GRU, {}),
    "lstm": (FusedLSTM, ScratchLSTM, nn.LSTM, {}),
}
close = dict(atol=1e-5, rtol=0)


def build_pair(family, form, **options):
    """(our cell, torch reference holding the very same weights)."""
    fused, scratch, reference, extra = FAMILIES[family]
    options = {"hidden_size": HIDDEN, **extra, **options}
    cell = (fused if form == "fused" else scratch)(INPUT, **options)
    options.pop("hidden_size")
    ref = reference(INPUT, HIDDEN, **options)
    ref.load_state_dict(cell.rnn.state_dict())
    return cell, ref


def random_state(cell, batch):
    """A non-zero starting state, so state-in is tested too."""
    h = torch.randn(cell.num_layers * cell.num_directions, batch, HIDDEN)
    return (h, torch.randn_like(h)) if cell.has_cell_state else h


def forward(module, x, hx, lengths):
    """Our cells take `lengths`; torch's modules take the batch packed."""
    if not isinstance(module, nn.RNNBase):
        return module(x, hx, lengths)
    if lengths is None:
        return module(x, hx)
    output, final = module(pack_padded_sequence(x, lengths, enforce_sorted=False), hx)
    return pad_packed_sequence(output, total_length=x.shape[0])[0], final


def run_with_grads(module, x, state, lengths=None):
    """Forward + backward of a fixed random loss -> (output, final state, input grads)."""
    x = x.clone().requires_grad_(True)
    parts = tuple(s.clone().requires_grad_(True)
                  for s in (state if isinstance(state, tuple) else (state,)))
    output, final = forward(module, x, parts if len(parts) == 2 else parts[0], lengths)
    finals = final if isinstance(final, tuple) else (final,)
    generator = torch.Generator().manual_seed(7)
    loss = (output * torch.randn(output.shape, generator=generator)).sum()
    for f in finals:
        loss = loss + (f * torch.randn(f.shape, generator=generator)).sum()
    loss.backward()
    return output, finals, [x.grad, *(s.grad for s in parts)]


def assert_same(cell, ref, x, state, lengths=None):
    cell_out = run_with_grads(cell, x, state, lengths)
    ref_out = run_with_grads(ref, x, state, lengths)
    torch.testing.assert_close(cell_out[0], ref_out[0], **close, msg=lambda m: f"output: {m}")
    torch.testing.assert_close(cell_out[1], ref_out[1], **close, msg=lambda m: f"state: {m}")
    torch.testing.assert_close(cell_out[2], ref_out[2], **close, msg=lambda m: f"input grads: {m}")
    ref_params = dict(ref.named_parameters())
    for name, p in cell.rnn.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, **close, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("form", ["fused", "scratch"])
@pytest.mark.parametrize("family", FAMILIES)
def test_matches_torch(family, form, num_layers, bidirectional, batch):
    torch.manual_seed(0)
    cell, ref = build_pair(family, form, num_layers=num_layers, bidirectional=bidirectional)
    cell.eval(), ref.eval()
    x = torch.randn(STEPS, batch, INPUT)
    assert_same(cell, ref, x, random_state(cell, batch))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("form", ["fused", "scratch"])
@pytest.mark.parametrize("family", FAMILIES)
def test_matches_torch_in_train_mode_with_zero_dropout(family, form, bidirectional, bias):
    torch.manual_seed(1)
    cell, ref = build_pair(family, form, num_layers=2, bidirectional=bidirectional,
                           bias=bias, dropout=0.0)
    cell.train(), ref.train()
    x = torch.randn(STEPS, 3, INPUT)
    assert_same(cell, ref, x, random_state(cell, 3))


@pytest.mark.parametrize("lengths", [[5, 1, 6, 3, 6, 2, 4], [5, 1, 4, 3, 2, 2, 4]],
                         ids=["with-full-rows", "all-shorter-than-T"])  # unsorted
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("form", ["fused", "scratch"])
@pytest.mark.parametrize("family", FAMILIES)
def test_padded_batch_matches_torch_on_packed_sequences(family, form, bidirectional, num_layers,
                                                        lengths):
    torch.manual_seed(2)
    cell, ref = build_pair(family, form, num_layers=num_layers, bidirectional=bidirectional)
    cell.eval(), ref.eval()
    lengths = torch.tensor(lengths)
    x = torch.randn(STEPS, 7, INPUT)
    assert_same(cell, ref, x, random_state(cell, 7), lengths)
    output, _ = cell(x, lengths=lengths)
    past_end = torch.arange(STEPS).unsqueeze(1) >= lengths  # [T, B]
    assert torch.count_nonzero(output[past_end]) == 0


def test_rnn_step_is_one_linear_map_over_the_concatenation():
    """W_ih x + W_hh h (two maps summed) = [W_ih | W_hh] [x; h] (one map, stacked weight)."""
    torch.manual_seed(3)
    cell = ScratchRNN(INPUT, hidden_size=HIDDEN)
    w_ih, w_hh, b_ih, b_hh = cell.rnn.all_weights[0]
    x, h = torch.randn(4, INPUT), torch.randn(4, HIDDEN)
    two_maps = x @ w_ih.t() + h @ w_hh.t()                                # [B, H]
    one_map = torch.cat([x, h], 1) @ torch.cat([w_ih, w_hh], 1).t()       # [B, I+H] @ [I+H, H]
    torch.testing.assert_close(two_maps, one_map, **close)
    output, state = cell(x.unsqueeze(0), h.unsqueeze(0))
    torch.testing.assert_close(output[0], torch.tanh(one_map + b_ih + b_hh), **close)
    torch.testing.assert_close(state[0], output[0], **close)
