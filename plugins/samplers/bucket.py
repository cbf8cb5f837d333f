"""The "bucket" sampler: batches of separate sequences of similar length, padded.

For SequenceSet splits (lines with <bos>/<eos>, aligned pairs). Each epoch shuffles the
sequences, sorts them by length within pools of pool_batches * batch_size, cuts each
pool into batches and shuffles the batch order. Rows of a batch then have similar
lengths, so little of a padded batch is padding, and the order still changes per epoch.

Padding is id 0 (the split does not carry the vocabulary, so <pad>'s id is unknown
here; datasets put <pad> first, at 0, when they have one). `Batch.lengths` says where
each row ends, and padded positions never count in the loss, so the value is moot.
Rows are independent: state_rule "reset".
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.nn.utils.rnn import pad_sequence

from seqgen import Batch, DataError, Sampler, SequenceSet

from .common import BATCH_OPTIONS, epoch_generator, require_split, shard_rows

SCHEMA = {
    "type": "object",
    "properties": {
        **BATCH_OPTIONS,
        "pool_batches": {"type": "integer", "minimum": 1, "default": 50,
                         "description": "Sort by length within pools of this many batches "
                                        "of a shuffled order; larger pools pad less, "
                                        "1 is plain shuffled batching."},
    },
}
DESCRIPTION = ("Separate sequences batched with others of similar length, padded, "
               "lengths set; hidden state is reset every batch.")


class BucketSampler(Sampler):
    state_rule = "reset"

    def __init__(self, split: SequenceSet, *, seed: int, rank: int = 0, world_size: int = 1,
                 batch_size: int = 32, pool_batches: int = 50):
        require_split(split, "sequences", "bucket")
        self.rows = shard_rows(batch_size, rank, world_size, "bucket")
        self.split, self.seed = split, seed
        self.batch_size, self.pool = batch_size, pool_batches * batch_size
        self.lengths = torch.tensor([len(x) for x in split.inputs], dtype=torch.int64)
        for i, (x, y) in enumerate(zip(split.inputs, split.targets)):
            if len(x) != len(y) or len(x) == 0:
                raise DataError(f"bucket sampler: sequence {i} has {len(x)} input and "
                                f"{len(y)} target tokens; they must be equal and non-zero")
        # The last, partial batch is kept (4 toy pairs make one batch) when it still has
        # a row for every rank; otherwise every rank skips it, so all step together.
        full, rest = divmod(len(split), batch_size)
        self.keep_last = rest >= world_size
        self.num_batches = full + self.keep_last
        if self.num_batches < 1:
            raise DataError(f"bucket sampler: needs at least {world_size} sequence(s) for "
                            f"one batch over {world_size} process(es), has {len(split)}")

    def __len__(self) -> int:
        return self.num_batches

    def epoch(self, epoch: int) -> Iterator[Batch]:
        g = epoch_generator(self.seed, epoch)
        order = torch.randperm(len(self.split), generator=g)
        batches: list[torch.Tensor] = []
        for start in range(0, len(order), self.pool):
            pool = order[start:start + self.pool]
            pool = pool[torch.argsort(self.lengths[pool], stable=True)]
            batches.extend(pool.split(self.batch_size))
        # Same order for every world_size; ranks skip a last batch too small to share.
        for j in torch.randperm(len(batches), generator=g).tolist():
            if len(batches[j]) == self.batch_size or self.keep_last:
                yield self._pad(batches[j][self.rows])

    def _pad(self, index: torch.Tensor) -> Batch:
        """Sequences `index` as time-major [T, b] int64, T = the longest, 0-padded."""
        rows = index.tolist()
        inputs = pad_sequence([self.split.inputs[i] for i in rows]).to(torch.int64)
        targets = pad_sequence([self.split.targets[i] for i in rows]).to(torch.int64)
        return Batch(inputs, targets, self.lengths[index])
