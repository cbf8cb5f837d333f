"""Issue 17's quality bar: examples/shakespeare.json on Tiny Shakespeare. Prints JSON.

    python benchmarks/shakespeare_quality.py [--corpus PATH] [--seeds 0 1]
                                             [--set KEY=VALUE ...]

Trains the example spec once per seed, as `seqgen run` would (the corpus path is an
override: the repo does not ship the data), on the standard split: the first 90% of the
characters train, the last 10% validate and are read only by evaluation. Reports, per
seed and as the mean over seeds:
  - the validation loss (nats/char) of the final weights, after at most 300 s of training
    (the training clock includes the periodic evaluations);
  - the validation loss at 60, 120 and 300 s: the last evaluation finished by then.
Target: mean final validation loss <= 1.45 nats/char. Not part of CI: each seed takes
five minutes; run it on a quiet machine (`--set train.threads=1` under `taskset -c 1` for
the pinned number).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import seqgen

from common import REPO, SHAKESPEARE, emit

MARKS = (60, 120, 300)
TARGET = 1.45


def one_seed(seed: int, overrides: list[str]) -> dict:
    """Train one seed; evaluations are timestamped on the training clock (which starts
    with the first epoch and includes evaluation time, as max_seconds does)."""
    clock = {}
    evals = []

    def on_event(event):
        now = time.perf_counter()
        if event.kind == "epoch_start" and "start" not in clock:
            clock["start"] = now
        elif event.kind == "eval":
            evals.append((now - clock["start"], event.data["step"], event.data["valid_loss"]))

    out = Path(tempfile.mkdtemp(prefix="shakespeare-")) / "run"
    result = seqgen.Session(entry_points=False).run(
        REPO / "examples" / "shakespeare.json", [*overrides, f"seed={seed}"], out=out,
        emit=on_event)
    at = {f"{mark}s": next((round(loss, 4) for t, _, loss in reversed(evals) if t <= mark),
                           None) for mark in MARKS}
    return {"seed": seed, "final_valid_loss": round(evals[-1][2], 4),
            "training_seconds": round(result.train.seconds, 1), "steps": result.train.step,
            "tokens": result.train.tokens, "stopped": result.train.stopped,
            "valid_loss_at": at,
            "valid_curve": [(round(t, 1), s, round(loss, 4)) for t, s, loss in evals],
            "sample": (result.samples[0].prompt + result.samples[0].text
                       if result.samples else ""),
            "parameters": result.num_parameters, "run_dir": str(out)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=str(SHAKESPEARE))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    overrides = [f"dataset.path={args.corpus}", *args.overrides]
    runs = [one_seed(seed, overrides) for seed in args.seeds]
    final = statistics.mean(r["final_valid_loss"] for r in runs)
    mean_at = {key: (statistics.mean(r["valid_loss_at"][key] for r in runs)
                     if all(r["valid_loss_at"][key] is not None for r in runs) else None)
               for key in runs[0]["valid_loss_at"]}
    seconds = max(r["training_seconds"] for r in runs)
    emit({"benchmark": "shakespeare_quality", "overrides": overrides,
          "mean_final_valid_loss": round(final, 4),
          "mean_valid_loss_at": {k: v and round(v, 4) for k, v in mean_at.items()},
          "max_training_seconds": seconds, "target": TARGET,
          "meets_target": final <= TARGET and seconds <= 300, "runs": runs})


if __name__ == "__main__":
    main()
