"""GRU training speed on CPU: seqgen's `gru` cell (its C++ kernel) vs torch's nn.LSTM and
nn.GRU of the same size. Prints one JSON object.

    python benchmarks/gru_training.py [--quick] [--threads N]

Workload (as benchmarks/cells.py): vocab 65, learned embedding 64, 2 layers of hidden 256,
batch 64, sequence 100; one step = forward, cross-entropy, backward, clip_grad_norm_, Adam.
The models are timed in interleaved rounds (median each), so load changes hit all alike.
  lstm          seqgen's `lstm` cell: torch's nn.LSTM (oneDNN)
  gru           seqgen's `gru` cell: the kernel of plugins/cells/gru_cpu.py
  gru-nn.GRU    the same cell made to run torch's nn.GRU (the path before the kernel)
Target (issue 17): gru tokens/s >= 1.2x lstm's. Also checked: the kernel's output and
gradients against nn.GRU's on the benchmark's own weights and batch (largest difference).
"""
from __future__ import annotations

import json
import os

import torch
import torch.nn.functional as F

from seqgen_plugins.cells import gru_cpu
from seqgen_plugins.cells.fused import FusedCell, FusedGRU, FusedLSTM

from cells import BATCH, EMBED, HIDDEN, LAYERS, STEPS, VOCAB, interleaved_medians, \
    others_cpu_share, timing_options, training_step


class TorchGRU(FusedGRU):
    """The `gru` cell as it was: torch's nn.GRU for training too."""

    def _forward(self, x, state, lengths):
        return FusedCell._forward(self, x, state, lengths)


def largest_difference() -> float:
    """max |kernel - nn.GRU| over the output and every gradient, same weights and batch."""
    torch.manual_seed(0)
    ours, theirs = FusedGRU(EMBED, hidden_size=HIDDEN, num_layers=LAYERS), None
    theirs = TorchGRU(EMBED, hidden_size=HIDDEN, num_layers=LAYERS)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(STEPS, BATCH, EMBED)
    results = []
    for cell in (ours, theirs):
        xi = x.clone().requires_grad_()
        out, _ = cell.train()(xi)
        F.mse_loss(out, torch.zeros_like(out)).mul(1e3).backward()
        results.append([out.detach(), xi.grad] + [p.grad for p in cell.parameters()])
    return max(float((a - b).abs().max()) for a, b in zip(*results))


def main() -> None:
    warmup, repeats = timing_options(__doc__.splitlines()[0])
    kernel = gru_cpu.kernel() is not None                    # built (or loaded) up front
    options = {"hidden_size": HIDDEN, "num_layers": LAYERS}
    steps = {name: training_step(build(EMBED, **options))[0]
             for name, build in (("lstm", FusedLSTM), ("gru", FusedGRU),
                                 ("gru-nn.GRU", TorchGRU))}
    seconds, others = others_cpu_share(lambda: interleaved_medians(steps, warmup, repeats))
    tokens = {name: round(BATCH * STEPS / s) for name, s in seconds.items()}
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "kernel_built": kernel,
        "workload": {"vocab": VOCAB, "embedding": EMBED, "hidden": HIDDEN, "layers": LAYERS,
                     "batch": BATCH, "seq_len": STEPS,
                     "step": "forward + cross_entropy + backward + clip_grad_norm_ + Adam"},
        "timing": {"warmup": warmup, "repeats": repeats, "statistic": "median, interleaved",
                   "others_cpu_share": None if others is None else round(others, 3)},
        "ms_per_step": {name: round(s * 1e3, 1) for name, s in seconds.items()},
        "tokens_per_s": tokens,
        "gru_over_lstm": round(tokens["gru"] / tokens["lstm"], 3),
        "gru_over_lstm_target": 1.2,
        "gru_over_nn_gru": round(tokens["gru"] / tokens["gru-nn.GRU"], 3),
        "max_abs_diff_vs_nn_gru": largest_difference(),
    }, indent=2))


if __name__ == "__main__":
    main()
