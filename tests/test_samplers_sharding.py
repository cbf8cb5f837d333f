"""Every built-in sampler shards rows over ranks: disjoint, and together the whole batch."""
import pytest
import torch

from seqgen import DataError, SequenceSet, TokenStream
from seqgen_plugins.samplers.bucket import BucketSampler
from seqgen_plugins.samplers.random_windows import RandomSampler
from seqgen_plugins.samplers.sequential import SequentialSampler

STREAM = TokenStream(torch.arange(200))
SEQS = [torch.arange(n) for n in (1 + torch.arange(23) % 7).tolist()]  # 23 = 4 x 5 + 3
CASES = [(SequentialSampler, STREAM, {"num_steps": 6}), (RandomSampler, STREAM, {"num_steps": 6}),
         (BucketSampler, SequenceSet(SEQS, SEQS), {"pool_batches": 2})]


def rows(batch) -> list[tuple]:
    """Each row's (inputs, targets) up to its length."""
    n = batch.lengths.tolist() if batch.lengths is not None else [batch.inputs.shape[0]] * \
        batch.inputs.shape[1]
    return [(tuple(batch.inputs[:m, b].tolist()), tuple(batch.targets[:m, b].tolist()))
            for b, m in enumerate(n)]


@pytest.mark.parametrize("factory, split, options", CASES)
def test_ranks_split_each_batch(factory, split, options):
    whole = list(factory(split, seed=3, batch_size=5, **options).epoch(2))
    ranks = [list(factory(split, seed=3, batch_size=5, rank=r, world_size=2, **options).epoch(2))
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(whole)  # every rank takes the same steps
    for k, batch in enumerate(whole):
        shards = [rows(r[k]) for r in ranks]
        assert sorted(shards[0] + shards[1]) == sorted(rows(batch))  # disjoint, and all of it
        assert len(shards[0]) >= len(shards[1]) >= 1


def test_batch_smaller_than_world_is_an_error():
    with pytest.raises(DataError, match="batch_size 2 is smaller than world_size 4"):
        SequentialSampler(STREAM, seed=0, batch_size=2, num_steps=4, rank=0, world_size=4)


def test_last_partial_batch_is_skipped_when_a_rank_would_get_no_row():
    split = SequenceSet(SEQS[:21], SEQS[:21])  # 4 x 5 + 1: one row cannot feed 2 ranks
    whole = list(BucketSampler(split, seed=0, batch_size=5).epoch(1))
    ranks = [list(BucketSampler(split, seed=0, batch_size=5, rank=r, world_size=2).epoch(1))
             for r in range(2)]
    assert len(whole) == 5 and len(ranks[0]) == len(ranks[1]) == 4
    shared = [b for b in whole if b.inputs.shape[1] == 5]  # order kept, minus the 1-row batch
    for k, batch in enumerate(shared):
        assert sorted(rows(ranks[0][k]) + rows(ranks[1][k])) == sorted(rows(batch))
