"""The "sequential" sampler (d2l's seq_data_iter_sequential): adjacent batches.

The stream, from a random offset, is cut into batch_size equal rows laid end to end;
batch k holds columns [k*T, (k+1)*T) of every row. So row i of batch k+1 starts at the
token right after row i of batch k ended, and the trainer carries the hidden state
across batches (state_rule "carry", detached), letting the model see context longer
than num_steps. Targets are the same positions shifted by one token.

    stream:  |off| row 0 ......... | row 1 ......... | ... | row B-1 ....... |rest|
    batch k: rows[:, kT:(k+1)T] -> transposed to time-major inputs [T, B]
"""
from __future__ import annotations

from typing import Iterator

import torch

from seqgen import Batch, Sampler, TokenStream

from .common import STREAM_OPTIONS, epoch_generator, require_split, shard_rows, too_small

SCHEMA = {
    "type": "object",
    "properties": {
        **STREAM_OPTIONS,
        "random_offset": {"type": "boolean", "default": True,
                          "description": "Start each epoch at a random offset in "
                                         "[0, num_steps) so windows shift between epochs."},
    },
}
DESCRIPTION = ("Adjacent windows: row i of each batch continues row i of the previous "
               "batch; hidden state is carried.")


class SequentialSampler(Sampler):
    state_rule = "carry"

    def __init__(self, split: TokenStream, *, seed: int, rank: int = 0, world_size: int = 1,
                 batch_size: int = 32, num_steps: int = 35, random_offset: bool = True):
        require_split(split, "stream", "sequential")
        self.rows = shard_rows(batch_size, rank, world_size, "sequential")
        self.ids, self.seed = split.ids, seed
        self.batch_size, self.num_steps = batch_size, num_steps
        self.max_offset = num_steps - 1 if random_offset else 0
        # Row length fixed for the largest offset, so every epoch has the same len().
        # One extra token at the end supplies the last target.
        usable = len(split) - self.max_offset - 1
        self.num_batches = usable // batch_size // num_steps
        if self.num_batches < 1:
            need = batch_size * num_steps + 1 + self.max_offset
            raise too_small("sequential", need, len(split), batch_size, num_steps,
                            self.max_offset)

    def __len__(self) -> int:
        return self.num_batches

    def epoch(self, epoch: int) -> Iterator[Batch]:
        g = epoch_generator(self.seed, epoch)
        offset = int(torch.randint(self.max_offset + 1, (), generator=g))
        row_len = self.num_batches * self.num_steps
        end = offset + self.batch_size * row_len
        # [B, row_len] views of the stream (no copy), then this rank's rows.
        xs = self.ids[offset:end].reshape(self.batch_size, row_len)[self.rows]
        ys = self.ids[offset + 1:end + 1].reshape(self.batch_size, row_len)[self.rows]
        for k in range(0, row_len, self.num_steps):
            cols = slice(k, k + self.num_steps)
            # [b, T] -> [T, b] int64: the only copy, one batch at a time.
            yield Batch(xs[:, cols].t().to(torch.int64).contiguous(),
                        ys[:, cols].t().to(torch.int64).contiguous())
