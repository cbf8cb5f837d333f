"""The fused GRU's CPU training path: a C++ kernel (gru_cpu.cpp), built on first use.

torch's CPU GRU trains slower than its LSTM (oneDNN fuses the LSTM; the GRU runs a
generic loop), though a GRU does 3/4 of the LSTM's products. This path does per layer:
  - the input products of all T steps as one GEMM, [T*B, I] x [I, 3H];
  - per step one [B, H] x [H, 3H] GEMM and one vectorised pass over the gates;
  - backward the same in reverse, then the weight gradients as GEMMs over all steps.
Same formula and weights as nn.GRU (tests compare outputs, final states and every
gradient, within 1e-5 in float32, ~1e-14 in float64).

It applies to a unidirectional GRU training on CPU in float32 or float64, with autograd,
no lengths (padding), no dropout between layers and no autocast; anything else runs
nn.GRU as before. The kernel is compiled by seqgen.load_native the first time it is
needed (about 30 s; cached per machine, so later processes load it at once). Where it
cannot be built (no C++ compiler, no ninja) the run says so once and uses nn.GRU.
SEQGEN_NATIVE=0 turns it off.
"""
from __future__ import annotations

import torch

from seqgen import load_native


def kernel():
    """The compiled extension (forward, backward), or None where it can't be built."""
    return load_native(__file__, "gru_cpu.cpp", "seqgen_gru_cpu_v1")


def applies(cell, x: torch.Tensor, lengths) -> bool:
    """Whether `cell` (a FusedGRU) trains this batch through the kernel."""
    return (x.device.type == "cpu" and x.shape[0] > 0 and cell.training
            and torch.is_grad_enabled()
            and lengths is None and not cell.bidirectional
            and (cell.dropout == 0.0 or cell.num_layers == 1)
            and x.dtype in (torch.float32, torch.float64)
            and all(p.dtype == x.dtype for p in cell.rnn.parameters())
            and not _autocast_on()
            and kernel() is not None)


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:                              # torch < 2.4
        return torch.is_autocast_cpu_enabled()


class _Layer(torch.autograd.Function):
    """One layer: (x [T,B,I], h0 [B,H], weights) -> y [T,B,H]; its final state is y[-1]."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):
        y, rzn, ghn = kernel().forward(x.contiguous(), h0, w_ih.contiguous(),
                                       w_hh.contiguous(), b_ih, b_hh)
        ctx.save_for_backward(x, h0, w_ih, w_hh, y, rzn, ghn)
        ctx.has_bias = b_ih is not None
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy):
        x, h0, w_ih, w_hh, y, rzn, ghn = ctx.saved_tensors
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = kernel().backward(
            dy, torch.zeros_like(h0), x.contiguous(), h0, w_ih.contiguous(),
            w_hh.contiguous(), y, rzn, ghn, ctx.has_bias)
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


def train_forward(cell, x: torch.Tensor, state: torch.Tensor):
    """x [T, B, I], state [L, B, H] -> (output [T, B, H], state [L, B, H]), as nn.GRU."""
    finals = []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(cell.all_layer_weights()):
        x = _Layer.apply(x, state[layer], w_ih, w_hh, b_ih, b_hh)
        finals.append(x[-1])
    return x, torch.stack(finals)
