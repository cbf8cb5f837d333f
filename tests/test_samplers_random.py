"""The "random" sampler: shuffled, non-overlapping windows, exact on an arange stream."""
import pytest
import torch

from seqgen import DataError, TokenStream
from seqgen_plugins.samplers.random_windows import RandomSampler

STREAM = TokenStream(torch.arange(100, dtype=torch.uint8))  # token == its position


def starts(sampler, epoch):
    return [s for b in sampler.epoch(epoch) for s in b.inputs[0].tolist()]


def test_windows_do_not_overlap_and_cover_the_corpus_after_the_offset():
    sampler = RandomSampler(STREAM, seed=0, batch_size=3, num_steps=10)
    assert len(sampler) == 3  # 9 windows of 10 (+1 target) fit at any offset in 0..9
    for epoch in range(5):
        batches = list(sampler.epoch(epoch))
        tokens = torch.cat([b.inputs.flatten() for b in batches]).sort().values
        offset = int(tokens[0])
        # 90 distinct positions offset..offset+89; the rest (< one window) is unused
        assert 0 <= offset < 10 and torch.equal(tokens, torch.arange(offset, offset + 90))
        for b in batches:
            assert torch.equal(b.inputs, b.inputs[0] + torch.arange(10).unsqueeze(1))
            assert torch.equal(b.targets, b.inputs + 1)
            assert b.inputs.dtype == torch.int64 and b.inputs.shape == (10, 3)


def test_same_seed_same_order_other_seed_or_epoch_other_order():
    a = RandomSampler(STREAM, seed=7, batch_size=2, num_steps=5)
    b = RandomSampler(STREAM, seed=7, batch_size=2, num_steps=5)
    c = RandomSampler(STREAM, seed=8, batch_size=2, num_steps=5)
    assert starts(a, 4) == starts(b, 4)
    assert starts(a, 4) != starts(c, 4)
    assert starts(a, 4) != starts(a, 5)


def test_too_small_corpus_names_what_one_batch_needs():
    with pytest.raises(DataError, match=r"random sampler: needs at least 110 tokens for one "
                                        r"batch of 10 x \(10\+1\) .* has 100"):
        RandomSampler(STREAM, seed=0, batch_size=10, num_steps=10)
