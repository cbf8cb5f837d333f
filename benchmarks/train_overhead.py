"""How much does seqgen's training loop add over a bare PyTorch loop? Prints JSON.

    python benchmarks/train_overhead.py [--steps 30] [--rounds 3]

Same model (embedding 64 -> 2-layer nn.LSTM hidden 256 -> linear head, vocabulary 65),
same batches (the sequential sampler over Tiny Shakespeare, batch 64 x 100 steps, hidden
state carried and detached), same optimizer (Adam) and clipping. The bare loop is what
a user would write by hand; seqgen's is `Trainer.fit` with the "lstm" cell plugin.
Rounds alternate bare and seqgen so drifting machine load hits both alike.
Target (issue 5): seqgen reaches >= 90% of the bare loop's tokens per second.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

import seqgen
from seqgen.train import Trainer

from common import SHAKESPEARE, emit

SPEC = {
    "dataset": {"type": "text", "path": str(SHAKESPEARE), "valid_fraction": 0.0},
    "model": {"embedding": {"type": "learned", "size": 64},
              "cell": {"type": "lstm", "hidden_size": 256, "num_layers": 2}},
    "sampler": {"type": "sequential", "batch_size": 64, "num_steps": 100},
    "train": {"epochs": 1, "optimizer": {"type": "adam", "lr": 0.002}, "clip_norm": 1.0,
              "log_every": 10_000},
}


class BareModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(65, 64)
        self.lstm = nn.LSTM(64, 256, num_layers=2)
        self.head = nn.Linear(256, 65)

    def forward(self, x, state):
        out, state = self.lstm(self.embedding(x), state)
        return self.head(out), state


def bare_loop(batches) -> float:
    torch.manual_seed(0)
    model = BareModel()
    opt = torch.optim.Adam(model.parameters(), lr=0.002)
    loss_fn = nn.CrossEntropyLoss()
    state = None
    start = time.perf_counter()
    for x, y in batches:
        if state is not None:
            state = tuple(s.detach() for s in state)
        logits, state = model(x, state)
        loss = loss_fn(logits.reshape(-1, 65), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return time.perf_counter() - start


def seqgen_loop(session, spec, steps) -> float:
    torch.manual_seed(0)
    data = session.build("dataset", spec["dataset"])
    model = session.build_model(spec, len(data.vocab))
    sampler = session.build("sampler", spec["sampler"], data.train, seed=0, rank=0, world_size=1)
    train = copy.deepcopy(spec["train"])
    train["max_steps"] = steps
    trainer = Trainer.from_spec(session, model, sampler, session.strategy("teacher-forcing"),
                                train, torch.device("cpu"), 0)
    start = time.perf_counter()
    trainer.fit()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    session = seqgen.Session(entry_points=False)
    spec = session.resolve(SPEC)
    data = session.build("dataset", spec["dataset"])
    sampler = session.build("sampler", spec["sampler"], data.train, seed=0, rank=0, world_size=1)
    batches = [(b.inputs, b.targets) for _, b in zip(range(args.steps), sampler.epoch(0))]
    tokens = sum(x.numel() for x, _ in batches)
    bare_loop(batches[:3])                                  # warm up kernels and allocator
    seqgen_loop(session, spec, 3)
    bare, ours = [], []
    for _ in range(args.rounds):
        bare.append(tokens / bare_loop(batches))
        ours.append(tokens / seqgen_loop(session, spec, args.steps))
    ratio = statistics.median(ours) / statistics.median(bare)
    emit({"benchmark": "train_overhead", "steps_per_round": args.steps, "rounds": args.rounds,
          "tokens_per_round": tokens,
          "bare_tokens_per_second": statistics.median(bare),
          "seqgen_tokens_per_second": statistics.median(ours),
          "bare_all": bare, "seqgen_all": ours,
          "ratio": ratio, "target": 0.90, "meets_target": ratio >= 0.90})


if __name__ == "__main__":
    main()
