"""Benchmark the LSTM cells on a char-LM training step; prints one JSON object to stdout.

    python benchmarks/cells.py [--quick] [--threads N]

Workload: LanguageModel(vocab 65, learned embedding 64, 2-layer LSTM hidden 256), batch 64,
sequence 100; one step = forward, cross-entropy, backward, clip_grad_norm_, Adam step.
After warm-up, the timed runs are interleaved round-robin (mm, then each model's step,
repeated) and each gets its median, so a change in machine load hits every number alike;
"others_cpu_share" is the fraction of the machine's CPU time that other processes used
during the timed rounds (Linux /proc/stat; null elsewhere): with 2 OpenMP threads on 2
cores, any of it stalls oneDNN's kernels badly, so trust a run only where it is near 0.

FLOPs: 6 per weight per token (2 forward, 4 backward: input and weight gradients),
counting the weight matrices of the cell (weight_ih_l*, weight_hh_l*) and of the head.
Not counted: biases, the embedding lookup, the gate nonlinearities, the loss and Adam.
The reference is a float32 2048x2048 torch.mm measured in the same run.

"lstm-textbook" is the LSTM as textbooks write it: one matmul per gate and per input
(8 per step and layer), x[t] indexing, no precomputed input projection.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from seqgen import Cell
from seqgen.model import LanguageModel, make_embedding
from seqgen_plugins.cells import register_cells

from common import busy_seconds

VOCAB, EMBED, HIDDEN, LAYERS, BATCH, STEPS = 65, 64, 256, 2, 64, 100


class TextbookLSTM(Cell):
    """Per gate g in (i, f, g, o): W_xg x_t + W_hg h, each its own nn.Linear."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.layers = nn.ModuleList(
            nn.ModuleDict({f"{source}{gate}": nn.Linear(size if source == "x" else hidden_size,
                                                        hidden_size)
                           for gate in "ifgo" for source in "xh"})
            for size in [input_size] + [hidden_size] * (num_layers - 1))

    def initial_state(self, batch_size, device=None):
        h = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device)
        return h, torch.zeros_like(h)

    def forward(self, x, state=None, lengths=None):
        h0, c0 = self.initial_state(x.shape[1], x.device) if state is None else state
        finals = []
        for k, w in enumerate(self.layers):
            h, c, outputs = h0[k], c0[k], []
            for t in range(x.shape[0]):
                i = torch.sigmoid(w["xi"](x[t]) + w["hi"](h))
                f = torch.sigmoid(w["xf"](x[t]) + w["hf"](h))
                g = torch.tanh(w["xg"](x[t]) + w["hg"](h))
                o = torch.sigmoid(w["xo"](x[t]) + w["ho"](h))
                c = f * c + i * g
                h = o * torch.tanh(c)
                outputs.append(h)
            x = torch.stack(outputs)
            finals.append((h, c))
        return x, tuple(torch.stack(s) for s in zip(*finals))


def counted_weights(model: LanguageModel) -> int:
    """Elements of the cell's and the head's weight matrices (see the module docstring)."""
    return sum(p.numel() for p in model.cell.parameters() if p.dim() == 2) + model.head.weight.numel()


def interleaved_medians(fns: dict, warmup: int, repeats: int) -> dict:
    """name -> median seconds of fns[name](), the timed calls taken round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def others_cpu_share(fn):
    """(fn(), share of all CPUs' time used by other processes while fn ran, or None)."""
    wall, mine, busy = time.perf_counter(), time.process_time(), busy_seconds()
    result = fn()
    if busy is None:
        return result, None
    others = busy_seconds() - busy - (time.process_time() - mine)
    return result, max(0.0, others) / ((time.perf_counter() - wall) * os.cpu_count())


def mm_2048():
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return lambda: torch.mm(a, b)


def training_step(cell: Cell):
    """(one full training step as a closure, model)."""
    torch.manual_seed(0)
    model = LanguageModel(VOCAB, cell, make_embedding(VOCAB, {"type": "learned", "size": EMBED}))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    ids = torch.randint(VOCAB, (STEPS + 1, BATCH))

    def step():
        logits, _ = model(ids[:-1])                                # [T, B, V]
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), ids[1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step, model


def single_step_us(forward, state, repeats: int) -> float:
    """Generation's call: batch 1, T=1, state carried, no autograd."""
    x = torch.randn(1, 1, EMBED)
    with torch.no_grad():
        call = {"step": lambda: forward(x, state)}
        return 1e6 * interleaved_medians(call, 100, repeats)["step"]


def measure_training(factories: dict, warmup: int, repeats: int) -> dict:
    """The training numbers, mm and every model timed in the same interleaved rounds."""
    steps = {"mm": mm_2048()}
    for name, build in factories.items():
        steps[name], model = training_step(build())
    flop = 6 * counted_weights(model) * BATCH * STEPS  # the same for every model here
    seconds, others = others_cpu_share(lambda: interleaved_medians(steps, warmup, repeats))
    mm = 2 * 2048 ** 3 / seconds.pop("mm") / 1e9
    return {
        "flops": {"per_weight_per_token": 6, "counted_weights": counted_weights(model),
                  "counted": "cell weight_ih_l*/weight_hh_l* + head weight (no biases, "
                             "embedding, nonlinearities, loss, optimizer)",
                  "gflop_per_step": round(flop / 1e9, 2)},
        "timing": {"warmup": warmup, "repeats": repeats, "statistic": "median, interleaved",
                   "others_cpu_share": None if others is None else round(others, 3)},
        "mm_2048_float32_gflops": round(mm, 1),
        "training": {name: {"seconds_per_step": round(t, 4),
                            "tokens_per_s": round(BATCH * STEPS / t),
                            "gflops": round(flop / t / 1e9, 1)} for name, t in seconds.items()},
        "fused_over_mm": round(flop / seconds["lstm"] / 1e9 / mm, 3),
        "fused_over_mm_target": 0.70,
        "scratch_over_textbook_speedup": round(seconds["lstm-textbook"] / seconds["lstm-scratch"], 3),
        "speedup_target": 1.15,
    }


def timing_options(description: str) -> tuple[int, int]:
    """--quick and --threads N, applied: (warm-up rounds, timed rounds)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer timed rounds")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads before measuring")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return (1, 3) if args.quick else (2, 9)


def main() -> None:
    warmup, repeats = timing_options(__doc__.splitlines()[0])

    cells = {}
    register_cells(lambda name, factory, **_: cells.setdefault(name, factory))
    options = {"hidden_size": HIDDEN, "num_layers": LAYERS}
    factories = {"lstm": lambda: cells["lstm"](EMBED, **options),
                 "lstm-scratch": lambda: cells["lstm-scratch"](EMBED, **options),
                 "lstm-textbook": lambda: TextbookLSTM(EMBED, HIDDEN, LAYERS)}
    training = measure_training(factories, warmup, repeats)
    fused = cells["lstm"](EMBED, **options).eval()
    state = fused.initial_state(1)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "workload": {"vocab": VOCAB, "embedding": EMBED, "hidden": HIDDEN, "layers": LAYERS,
                     "batch": BATCH, "seq_len": STEPS,
                     "step": "forward + cross_entropy + backward + clip_grad_norm_ + Adam"},
        **training,
        "single_step_batch1_us": {  # generation: the fused cell's fast path vs nn.LSTM itself
            "lstm_fast_path": round(single_step_us(fused, state, 1000), 1),
            "nn.LSTM_module": round(single_step_us(fused.rnn, state, 1000), 1)},
    }, indent=2))


if __name__ == "__main__":
    main()
