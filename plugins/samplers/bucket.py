"""The "bucket" sampler: batches of separate sequences of similar length, padded.

For SequenceSet splits (lines with <bos>/<eos>, aligned pairs) and PairSet splits
(seq2seq: a source and a target of its own length per row). Each epoch shuffles the
sequences, sorts them by length (pairs: by source length, then target length) within
pools of pool_batches * batch_size, cuts each pool into batches and shuffles the batch
order. Rows of a batch then have similar
lengths, so little of a padded batch is padding, and the order still changes per epoch.

Padding is id 0 (the split does not carry the vocabulary, so <pad>'s id is unknown
here; datasets put <pad> first, at 0, when they have one). `Batch.lengths` says where
each row ends, and padded positions never count in the loss, so the value is moot.
A pair batch holds the padded source [S, b] with `source_lengths`, the decoder's input
(<bos> + target) and the target [T, b] with `lengths`. Rows are independent: state_rule
"reset".
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.nn.utils.rnn import pad_sequence

from seqgen import Batch, DataError, PairSet, Sampler, SequenceSet

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

    def __init__(self, split: SequenceSet | PairSet, *, seed: int, rank: int = 0,
                 world_size: int = 1, batch_size: int = 32, pool_batches: int = 50):
        require_split(split, ("sequences", "pairs"), "bucket")
        self.rows = shard_rows(batch_size, rank, world_size, "bucket")
        self.split, self.seed = split, seed
        self.batch_size, self.pool = batch_size, pool_batches * batch_size
        self.pairs = split.kind == "pairs"
        if self.pairs:
            self.lengths = torch.tensor([len(y) for y in split.targets], dtype=torch.int64)
            self.source_lengths = torch.tensor([len(x) for x in split.sources], dtype=torch.int64)
            # sort key: source length first (the encoder's padding), then target length
            self.order_key = self.source_lengths * (int(self.lengths.max(0).values) + 1 if len(self.lengths) else 1) + self.lengths
            for i, (x, y) in enumerate(zip(split.sources, split.targets)):
                if len(x) == 0 or len(y) == 0:
                    raise DataError(f"bucket sampler: pair {i} has {len(x)} source and "
                                    f"{len(y)} target tokens; both must be non-zero")
        else:
            self.lengths = torch.tensor([len(x) for x in split.inputs], dtype=torch.int64)
            self.order_key = self.lengths
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
            pool = pool[torch.argsort(self.order_key[pool], stable=True)]
            batches.extend(pool.split(self.batch_size))
        # Same order for every world_size; ranks skip a last batch too small to share.
        for j in torch.randperm(len(batches), generator=g).tolist():
            if len(batches[j]) == self.batch_size or self.keep_last:
                yield self._pad(batches[j][self.rows])

    def _pad(self, index: torch.Tensor) -> Batch:
        """Sequences `index` as time-major [T, b] int64, T = the longest, 0-padded."""
        rows, split = index.tolist(), self.split
        if self.pairs:
            return split.batch(rows)              # source [S, b], target [T, b], lengths
        targets = pad_sequence([split.targets[i] for i in rows]).to(torch.int64)
        inputs = pad_sequence([split.inputs[i] for i in rows]).to(torch.int64)
        return Batch(inputs, targets, self.lengths[index])
