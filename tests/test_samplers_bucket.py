"""The "bucket" sampler: padding, lengths, less padding than plain shuffled batches."""
import pytest
import torch

from seqgen import DataError, SequenceSet, TokenStream
from seqgen_plugins.samplers.bucket import BucketSampler

LENGTHS = [(7 * i) % 23 + 1 for i in range(200)]  # 1..23, scattered
SEQS = [torch.arange(1, n + 1, dtype=torch.uint8) for n in LENGTHS]  # never 0: 0 is padding
SPLIT = SequenceSet(SEQS, [s + 1 for s in SEQS])


def padding(sampler) -> int:
    return sum(b.inputs.numel() - b.num_tokens for b in sampler.epoch(0))


def test_rows_are_padded_with_zero_and_lengths_say_where_they_end():
    batches = list(BucketSampler(SPLIT, seed=0, batch_size=8).epoch(0))
    assert len(batches) == 25
    seen = []
    for b in batches:
        assert b.inputs.dtype == torch.int64 and b.lengths.dtype == torch.int64
        assert b.inputs.shape[0] == int(b.lengths.max())  # T = longest row
        for row, n in enumerate(b.lengths.tolist()):
            assert torch.equal(b.inputs[:n, row], torch.arange(1, n + 1))
            assert torch.equal(b.targets[:n, row], torch.arange(2, n + 2))
            assert not b.inputs[n:, row].any() and not b.targets[n:, row].any()
            seen.append(n)
    assert sorted(seen) == sorted(LENGTHS)  # every sequence exactly once


def test_bucketing_pads_less_than_plain_shuffled_batches():
    bucketed = padding(BucketSampler(SPLIT, seed=0, batch_size=8, pool_batches=50))
    shuffled = padding(BucketSampler(SPLIT, seed=0, batch_size=8, pool_batches=1))
    assert bucketed < shuffled / 4


def test_last_partial_batch_is_kept_and_order_changes_per_epoch():
    sampler = BucketSampler(SequenceSet(SEQS[:4], SEQS[:4]), seed=0, batch_size=32)
    assert len(sampler) == 1 and next(sampler.epoch(0)).inputs.shape[1] == 4
    big = BucketSampler(SPLIT, seed=0, batch_size=8)
    order = [[b.lengths.tolist() for b in big.epoch(k)] for k in range(2)]
    assert order[0] != order[1]


def test_errors():
    with pytest.raises(DataError, match="bucket sampler: needs at least 1 sequence"):
        BucketSampler(SequenceSet([], []), seed=0)
    with pytest.raises(DataError, match="bucket sampler needs a SequenceSet"):
        BucketSampler(TokenStream(torch.arange(10)), seed=0)
    with pytest.raises(DataError, match="sequence 1 has 8 input and 15 target tokens"):
        BucketSampler(SequenceSet(SEQS[:2], [SEQS[0], SEQS[2]]), seed=0)
