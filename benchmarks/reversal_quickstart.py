"""The seq2seq quickstart: time to train the "reversal" preset, and its exact match on
held-out strings after every epoch. Prints one JSON object.

    python benchmarks/reversal_quickstart.py                  # the preset as shipped
    taskset -c 1 python benchmarks/reversal_quickstart.py --threads 1

The issue's target: above 95% exact match in under a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import time

import torch

import seqgen
from common import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = seqgen.Session(entry_points=False).run("reversal", save=False)
    seconds = time.perf_counter() - start
    evals = [h for h in result.train.history if h["event"] == "eval"]
    emit({"benchmark": "reversal_quickstart", "seconds": seconds,
          "train_seconds": result.train.seconds, "epochs": len(evals),
          "exact_match_by_epoch": [round(h["valid_exact_match"], 4) for h in evals],
          "final_exact_match": evals[-1]["valid_exact_match"],
          "final_bleu": evals[-1].get("valid_bleu"),
          "meets_target": evals[-1]["valid_exact_match"] > 0.95 and seconds < 60})


if __name__ == "__main__":
    main()
