"""The fused GRU's CPU training kernel (plugins/cells/gru_cpu.py): nn.GRU's numbers for
outputs, final states and every gradient; when it applies; and the fallback."""
from __future__ import annotations

import pytest
import torch

import seqgen.native
from seqgen_plugins.cells import gru_cpu
from seqgen_plugins.cells.fused import FusedGRU

real_applies = gru_cpu.applies           # tests patch gru_cpu.applies; this is the real one
needs_kernel = pytest.mark.skipif(gru_cpu.kernel() is None,
                                  reason="the GRU kernel cannot be built here (no compiler)")


def gru(layers=2, bias=True, dtype=torch.float32, **options):
    torch.manual_seed(0)
    return FusedGRU(6, hidden_size=10, num_layers=layers, bias=bias, **options).to(dtype).train()


def gradients_of(cell, x, state, use_kernel: bool, monkeypatch):
    """(output, final state, [grad of x, of the state, of every parameter]) with the kernel
    on or off, from a loss that reads the output and the final state."""
    monkeypatch.setattr(gru_cpu, "applies", lambda *a: use_kernel and real_applies(*a))
    for p in cell.parameters():
        p.grad = None
    x = x.detach().clone().requires_grad_()
    state = None if state is None else state.detach().clone().requires_grad_()
    out, final = cell(x, state)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    ((out * weights).sum() + (final ** 2).sum()).backward()
    grads = [x.grad] + ([] if state is None else [state.grad])
    return out, final, grads + [p.grad for p in cell.parameters()]



@needs_kernel
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
@pytest.mark.parametrize("layers,bias", [(1, True), (2, True), (3, False)])
@pytest.mark.parametrize("with_state", [True, False])
def test_outputs_states_and_every_gradient_match_nn_gru(dtype, atol, layers, bias, with_state,
                                                        monkeypatch):
    cell = gru(layers, bias, dtype)
    x = torch.randn(9, 4, 6, dtype=dtype)
    state = torch.randn(layers, 4, 10, dtype=dtype) if with_state else None
    assert real_applies(cell, x, None)
    ours = gradients_of(cell, x, state, True, monkeypatch)
    torch_ = gradients_of(cell, x, state, False, monkeypatch)
    torch.testing.assert_close(ours[0], torch_[0], atol=atol, rtol=0)
    torch.testing.assert_close(ours[1], torch_[1], atol=atol, rtol=0)
    assert len(ours[2]) == len(torch_[2])
    for mine, theirs in zip(ours[2], torch_[2]):
        torch.testing.assert_close(mine, theirs, atol=atol, rtol=0)


@needs_kernel
def test_a_learned_initial_state_gets_its_gradient(monkeypatch):
    cell = gru(2, initial_state="learned")
    with torch.no_grad():
        cell.h0.normal_()
    x = torch.randn(5, 3, 6)
    ours = gradients_of(cell, x, None, True, monkeypatch)
    torch_ = gradients_of(cell, x, None, False, monkeypatch)
    names = [n for n, _ in cell.named_parameters()]
    assert "h0" in names
    for mine, theirs in zip(ours[2], torch_[2]):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


@needs_kernel
def test_long_sequences_and_wide_layers_stay_close(monkeypatch):
    """The vectorised gate pass over H=96 (not a multiple of the vector width) at T=60."""
    torch.manual_seed(1)
    cell = FusedGRU(20, hidden_size=96, num_layers=2).train()
    x = torch.randn(60, 5, 20)
    ours = gradients_of(cell, x, None, True, monkeypatch)
    torch_ = gradients_of(cell, x, None, False, monkeypatch)
    torch.testing.assert_close(ours[0], torch_[0], atol=1e-5, rtol=0)
    for mine, theirs in zip(ours[2], torch_[2]):
        torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("case", ["eval", "no_grad", "bidirectional", "dropout", "lengths",
                                  "autocast", "half"])
def test_it_applies_only_to_plain_cpu_training(case):
    options = {"bidirectional": case == "bidirectional",
               "dropout": 0.5 if case == "dropout" else 0.0}
    cell = gru(2, **options)
    x = torch.randn(4, 2, 6)
    lengths = torch.tensor([4, 3]) if case == "lengths" else None
    if case == "eval":
        cell.eval()
    if case == "half":
        cell, x = cell.bfloat16(), x.bfloat16()
    with torch.set_grad_enabled(case != "no_grad"), \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "autocast"):
        assert not real_applies(cell, x, lengths)
    plain = torch.randn(4, 2, 6)
    assert real_applies(gru(2), plain, None) == (gru_cpu.kernel() is not None)


def test_without_a_compiler_training_says_so_once_and_uses_nn_gru(monkeypatch, capsys):
    from torch.utils import cpp_extension

    def fail(**kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")
    monkeypatch.setattr(cpp_extension, "load", fail)
    monkeypatch.setattr(seqgen.native, "_loaded", {})
    cell = gru(1)
    x = torch.randn(3, 2, 6)
    assert not gru_cpu.applies(cell, x, None)
    assert not gru_cpu.applies(cell, x, None)                 # decided once
    err = capsys.readouterr().err
    assert err.count("could not build the C++ kernel gru_cpu.cpp") == 1
    assert "Ninja is required" in err
    out, _ = cell(x)                                           # nn.GRU, as before
    torch.testing.assert_close(out, cell.rnn(x)[0])


def test_seqgen_native_0_turns_it_off(monkeypatch):
    monkeypatch.setenv("SEQGEN_NATIVE", "0")
    monkeypatch.setattr(seqgen.native, "_loaded", {})
    assert gru_cpu.kernel() is None
    assert not gru_cpu.applies(gru(1), torch.randn(3, 2, 6), None)


@needs_kernel
def test_training_runs_the_kernel_not_the_module(monkeypatch):
    cell = gru(2)

    def refuse(*args, **kwargs):
        raise AssertionError("the torch module ran")
    monkeypatch.setattr(cell.rnn, "forward", refuse)
    out, state = cell(torch.randn(4, 3, 6))                   # training, autograd on
    assert out.shape == (4, 3, 10) and state.shape == (2, 3, 10)
    with pytest.raises(AssertionError, match="the torch module ran"):
        cell.eval()(torch.randn(4, 3, 6))


@needs_kernel
@pytest.mark.parametrize("bias", [-60.0, -100.0, 100.0])
def test_saturated_gates_stay_finite_as_in_nn_gru(bias, monkeypatch):
    """exp overflows at these pre-activations; the gates must saturate, not become NaN."""
    cell = gru(1)
    with torch.no_grad():
        cell.rnn.bias_ih_l0.fill_(bias)
    x = torch.randn(3, 2, 6)
    ours = gradients_of(cell, x, None, True, monkeypatch)
    torch_ = gradients_of(cell, x, None, False, monkeypatch)
    assert torch.isfinite(ours[0]).all()
    torch.testing.assert_close(ours[0], torch_[0], atol=1e-5, rtol=0)
    for mine, theirs in zip(ours[2], torch_[2]):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)


def test_a_stale_build_lock_is_cleared(tmp_path, monkeypatch, capsys):
    """A build killed mid-way leaves torch's lock file, which torch would wait on forever."""
    import os
    import time

    from torch.utils import cpp_extension
    monkeypatch.setattr(cpp_extension, "_get_build_directory", lambda name, verbose: str(tmp_path))
    lock = tmp_path / "lock"
    lock.touch()
    seqgen.native._clear_stale_lock(cpp_extension, "x")
    assert lock.exists()                                         # fresh: maybe a live build
    old = time.time() - seqgen.native.STALE_LOCK_SECONDS - 5
    os.utime(lock, (old, old))
    seqgen.native._clear_stale_lock(cpp_extension, "x")
    assert not lock.exists()
    assert "removed a stale build lock" in capsys.readouterr().err
