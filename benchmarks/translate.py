"""Batched translation vs one sentence at a time, with the same model. Prints one JSON object.

    python benchmarks/translate.py                 # 1,000 sentences (about 1 min idle)
    python benchmarks/translate.py --threads 1     # pin with taskset -c 1 for stable numbers
    python benchmarks/translate.py --sentences 200 --train-epochs 1

The model is the "reversal" preset's (bidirectional GRU encoder, GRU decoder, Bahdanau
attention), trained for --train-epochs epochs so its translations end at <eos> as a
trained model's do. The sentences are the reversal task's validation sources, repeated
to --sentences. Both sides decode greedily through LoadedModel.translate: "batched"
hands it all sentences (one batch of --batch-size at a time, like `seqgen generate
--source-file`); "one at a time" calls it once per sentence. Their outputs are checked
to be identical. The issue's target: batched at least 20x faster.
"""
from __future__ import annotations

import argparse
import time

import torch

import seqgen
from common import emit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    session = seqgen.Session(entry_points=False)
    result = session.run("reversal", [f"train.epochs={args.train_epochs}",
                                      "generate.strategies=[]"], save=False)
    model, data = result.model, session.build("dataset", result.spec["dataset"])
    pool = [data.input_vocab.decode(s.tolist()) for s in data.valid.sources]
    sentences = [pool[i % len(pool)] for i in range(args.sentences)]
    steps = 12

    start = time.perf_counter()
    batched = []
    for i in range(0, len(sentences), args.batch_size):
        batched += model.translate(sentences[i:i + args.batch_size], "greedy", steps)
    batched_s = time.perf_counter() - start

    start = time.perf_counter()
    alone = [model.translate([s], "greedy", steps)[0] for s in sentences]
    alone_s = time.perf_counter() - start

    same = [a.text for a in batched] == [b.text for b in alone]
    exact = sum(t.text == s[::-1] for t, s in zip(batched, sentences)) / len(sentences)
    emit({"benchmark": "translate", "sentences": len(sentences), "batch_size": args.batch_size,
          "max_new_tokens": steps, "train_epochs": args.train_epochs,
          "exact_match": exact, "outputs_identical": same,
          "batched_seconds": batched_s, "one_at_a_time_seconds": alone_s,
          "batched_sentences_per_second": len(sentences) / batched_s,
          "one_at_a_time_sentences_per_second": len(sentences) / alone_s,
          "speedup": alone_s / batched_s, "target_speedup": 20.0,
          "meets_target": alone_s / batched_s >= 20.0})


if __name__ == "__main__":
    main()
