"""The "random" sampler (d2l's seq_data_iter_random): shuffled, independent windows.

Each epoch draws an offset in [0, num_steps), cuts the stream from there into
non-overlapping windows of num_steps tokens, shuffles the windows and batches them
(dropping the last incomplete batch). Targets are the same positions shifted by one.
Rows of one batch are unrelated, so the trainer resets the state every batch
(state_rule "reset").

    stream:  |off| w0 | w1 | w2 | ... | w_{n-1} |rest < num_steps+1|
    batch:   inputs[t, b] = stream[start_b + t], targets[t, b] = stream[start_b + t + 1]
"""
from __future__ import annotations

from typing import Iterator

import torch

from seqgen import Batch, Sampler, TokenStream

from .common import STREAM_OPTIONS, epoch_generator, require_split, shard_rows, too_small

SCHEMA = {"type": "object", "properties": dict(STREAM_OPTIONS)}
DESCRIPTION = ("Shuffled non-overlapping windows from a random offset; hidden state is "
               "reset every batch.")


class RandomSampler(Sampler):
    state_rule = "reset"

    def __init__(self, split: TokenStream, *, seed: int, rank: int = 0, world_size: int = 1,
                 batch_size: int = 32, num_steps: int = 35):
        require_split(split, "stream", "random")
        self.rows = shard_rows(batch_size, rank, world_size, "random")
        self.size, self.seed = len(split), seed
        self.batch_size, self.num_steps = batch_size, num_steps
        # Windows available at the largest offset (num_steps - 1): the same len() every
        # epoch. At smaller offsets one more window may exist; it is shuffled in, and
        # which windows fall in the dropped remainder changes from epoch to epoch.
        windows = (len(split) - num_steps) // num_steps
        self.num_batches = windows // batch_size
        if self.num_batches < 1:
            need = batch_size * num_steps + num_steps
            raise too_small("random", need, len(split), batch_size, num_steps, num_steps - 1)
        self.windows = split.ids.unfold(0, num_steps + 1, 1)  # [N-T, T+1] view, no copy

    def __len__(self) -> int:
        return self.num_batches

    def epoch(self, epoch: int) -> Iterator[Batch]:
        g = epoch_generator(self.seed, epoch)
        offset = int(torch.randint(self.num_steps, (), generator=g))
        windows = (self.size - offset - 1) // self.num_steps
        starts = offset + self.num_steps * torch.randperm(windows, generator=g)  # [windows]
        for k in range(self.num_batches):
            batch = starts[k * self.batch_size:(k + 1) * self.batch_size][self.rows]  # [b]
            rows = self.windows[batch].t().to(torch.int64)  # [T+1, b]: one gather, one cast
            yield Batch(rows[:-1].contiguous(), rows[1:].contiguous())
