"""seqgen.testing.samplers: built-ins pass it, and each broken sampler is caught."""
import re

import pytest
import torch

from seqgen import Batch, DataError, Sampler, SequenceSet, TokenStream
from seqgen.testing.samplers import check_sampler
from seqgen_plugins.samplers.bucket import BucketSampler
from seqgen_plugins.samplers.random_windows import RandomSampler
from seqgen_plugins.samplers.sequential import SequentialSampler

STREAM = TokenStream(torch.arange(300, dtype=torch.int16))
SEQS = [torch.arange(n, dtype=torch.uint8) for n in (1 + torch.arange(30) % 9).tolist()]
SEQUENCES = SequenceSet(SEQS, [s + 1 for s in SEQS])
WINDOWS = {"batch_size": 4, "num_steps": 5}


@pytest.mark.parametrize("factory, split, options, shuffles", [
    (SequentialSampler, STREAM, WINDOWS, True),
    (SequentialSampler, STREAM, {**WINDOWS, "random_offset": False}, False),
    (RandomSampler, STREAM, WINDOWS, True),
    (BucketSampler, SEQUENCES, {"batch_size": 4, "pool_batches": 2}, True),
    (BucketSampler, SequenceSet(SEQS[:29], SEQS[:29]), {"batch_size": 4}, True),  # 7x4+1
])
def test_built_in_samplers_pass(factory, split, options, shuffles):
    batches = check_sampler(factory, split, options=options, shuffles=shuffles)
    assert batches


class Windows(Sampler):
    """A correct minimal sampler: consecutive windows [T=4, B=2]; tweaked below to break."""

    state_rule = "carry"

    def __init__(self, split, *, seed, rank=0, world_size=1):
        if len(split) < 17:
            raise DataError("too small")
        self.ids, self.seed = split.ids.long(), seed
        self.rows = slice(rank, None, world_size)
        self.n = (len(split) - 2) // 8  # batches, leaving room for an offset of 1

    def __len__(self):
        return self.n

    def window(self, k, offset):
        rows = self.ids[offset:offset + 8 * self.n + 1]
        x = rows[:-1].view(2, -1)[:, 4 * k:4 * k + 4].t()  # [T, B]
        y = rows[1:].view(2, -1)[:, 4 * k:4 * k + 4].t()
        return Batch(x[:, self.rows].contiguous(), y[:, self.rows].contiguous())

    def epoch(self, epoch):
        return (self.window(k, 0) for k in range(self.n))


class Int32(Windows):
    def epoch(self, epoch):
        return (Batch(b.inputs.int(), b.targets.int()) for b in super().epoch(epoch))


class Unshifted(Windows):
    def epoch(self, epoch):
        return (Batch(b.inputs, b.inputs) for b in super().epoch(epoch))


class WrongLen(Windows):
    def __len__(self):
        return self.n + 1


class Stateful(Windows):
    """Batches depend on earlier calls, as with an advancing global RNG."""

    calls = 0

    def epoch(self, epoch):
        self.calls += 1
        return (self.window(k, self.calls % 2) for k in range(self.n))


class Empty(Windows):
    def __init__(self, split, *, seed, rank=0, world_size=1):
        self.ids, self.rows = split.ids.long(), slice(rank, None, world_size)
        self.n = (len(split) - 2) // 8  # 0 for a tiny split: no error raised


class Reversed(Windows):
    def epoch(self, epoch):
        return reversed(list(super().epoch(epoch)))


class NoShard(Windows):
    def __init__(self, split, *, seed, rank=0, world_size=1):
        super().__init__(split, seed=seed)


@pytest.mark.parametrize("broken, message", [
    (Int32, "inputs must be a [T, B] int64 tensor"),
    (Unshifted, "not a run of the stream with targets = inputs shifted by one"),
    (WrongLen, "len() is 38 but epoch 0 yielded 37 batches"),
    (Stateful, "gave different batches when called twice"),
    (Empty, "raise seqgen.DataError"),
    (Reversed, "state_rule 'carry' needs each row to continue"),
    (NoShard, "shards must be disjoint and cover it"),
])
def test_broken_samplers_are_caught(broken, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_sampler(broken, STREAM, options={}, shuffles=False)


def test_sampler_ignoring_its_seed_is_caught():
    with pytest.raises(AssertionError, match="all give the same epoch 0; is the seed ignored"):
        check_sampler(Windows, STREAM, options={}, shuffles=True)
