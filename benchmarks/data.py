"""Data pipeline benchmark: encoding speed, dataset memory, batching cost. Prints one JSON.

    python benchmarks/data.py            # 100 MB corpus (tinyshakespeare repeated in memory)
    python benchmarks/data.py --quick    # 10 MB

(a) char encoding: seqgen's (the "text" dataset's chunked, vectorised path, and a single
    `Vocab.encode` call) vs the textbook `[char_to_idx[c] for c in text]`, same text.
(b) memory: the "text" dataset built from the corpus written to a temporary file (outside
    the repo), in a fresh process so its peak RSS is the build's alone.
(c) batching: time per batch of the sequential and random samplers vs one training step
    of a 2-layer LSTM (hidden 256, embedding 64, vocab 65, batch 64, 100 steps).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from torch import nn

from seqgen import TokenStream, Vocab
from seqgen_plugins.datasets.text import build_text_dataset
from seqgen_plugins.samplers.random_windows import RandomSampler
from seqgen_plugins.samplers.sequential import SequentialSampler

REPO = Path(__file__).resolve().parent.parent
BATCH, STEPS, EMBED, HIDDEN, LAYERS = 64, 100, 64, 256, 2


def timed(fn, repeat: int = 1):
    """(best seconds over `repeat` runs, last result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def encoding(text: str) -> dict:
    """Best of 3 runs each, so both sides get the same chance on a busy machine."""
    vocab = Vocab.from_text(text)
    seqgen_s, ids = timed(lambda: vocab.encode(text), repeat=3)
    char_to_idx = {c: i for i, c in enumerate(vocab.tokens)}
    textbook_s, listed = timed(lambda: [char_to_idx[c] for c in text], repeat=3)
    assert len(ids) == len(listed) and ids[-1000:].tolist() == listed[-1000:]  # same ids
    return {"chars": len(text), "seqgen_s": round(seqgen_s, 3),
            "textbook_listcomp_s": round(textbook_s, 3),
            "speedup": round(textbook_s / seqgen_s, 1)}


def _proc_mb(field: str) -> float:
    """VmRSS / VmHWM (peak) of this process from /proc, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise KeyError(field)


def _build_in_fresh_process(path: str) -> dict:
    # ru_maxrss survives fork+exec on Linux (it would report the parent's peak), so
    # reset this process's peak (VmHWM) after imports and read it after the build.
    Path("/proc/self/clear_refs").write_text("5")
    before = _proc_mb("VmRSS")
    seconds, ds = timed(lambda: build_text_dataset(path=path))
    peak = _proc_mb("VmHWM")
    ids = torch.cat([ds.train.ids, ds.valid.ids])
    return {"dtype": str(ids.dtype).replace("torch.", ""),
            "ids_mb": round(ids.numel() * ids.element_size() / 1e6, 1),
            "build_s": round(seconds, 3), "rss_before_build_mb": round(before),
            "peak_rss_mb": round(peak), "build_peak_mb": round(peak - before),
            "int64_ids_would_be_mb": round(ids.numel() * 8 / 1e6, 1)}


def memory(text: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        path.write_text(text, encoding="utf-8")
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            result = pool.submit(_build_in_fresh_process, str(path)).result()
    return {"file_mb": round(len(text.encode()) / 1e6, 1), **result}


def batching(ids: torch.Tensor, vocab_size: int, steps: int) -> dict:
    split = TokenStream(ids)
    per_batch, first = {}, {}
    for name, cls in (("sequential", SequentialSampler), ("random", RandomSampler)):
        sampler = cls(split, seed=0, batch_size=BATCH, num_steps=STEPS)
        it = sampler.epoch(1)
        first[name], _ = timed(lambda: next(it))  # includes the epoch's offset and shuffle
        seconds, _ = timed(lambda: [next(it) for _ in range(200)], repeat=3)
        per_batch[name] = seconds / 200

    torch.manual_seed(0)
    embed, lstm = nn.Embedding(vocab_size, EMBED), nn.LSTM(EMBED, HIDDEN, LAYERS)
    head = nn.Linear(HIDDEN, vocab_size)
    params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=2e-3)
    batch = next(SequentialSampler(split, seed=0, batch_size=BATCH, num_steps=STEPS).epoch(0))

    def step():
        out, _ = lstm(embed(batch.inputs))  # [T, B, H]
        loss = nn.functional.cross_entropy(head(out).flatten(0, 1), batch.targets.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    step()  # warm-up
    step_s, _ = timed(lambda: [step() for _ in range(steps)])
    step_s /= steps
    result = {"train_step_ms": round(step_s * 1e3, 2), "batch": [BATCH, STEPS],
              "torch_threads": torch.get_num_threads()}
    for name, seconds in per_batch.items():
        result[f"{name}_first_batch_ms"] = round(first[name] * 1e3, 3)
        result[f"{name}_batch_ms"] = round(seconds * 1e3, 4)
        result[f"{name}_pct_of_step"] = round(100 * seconds / step_s, 3)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(REPO / "../shared/data/tinyshakespeare.txt"))
    parser.add_argument("--quick", action="store_true", help="10 MB instead of 100 MB")
    args = parser.parse_args(argv)
    base = Path(args.corpus).read_text(encoding="utf-8")
    size = (10 if args.quick else 100) * 10**6
    text = (base * (size // len(base) + 1))[:size]  # repeated in memory, never written here

    report = {"corpus": str(Path(args.corpus).resolve()), "cpus": os.cpu_count(),
              "load_avg_1min": os.getloadavg()[0], "encoding": encoding(text),
              "memory": memory(text)}
    vocab = Vocab.from_text(base)
    report["batching"] = batching(vocab.encode(text), len(vocab),
                                  steps=3 if args.quick else 10)
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
