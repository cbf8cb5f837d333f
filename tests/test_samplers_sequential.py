"""The "sequential" sampler: adjacent rows, exact positions on an arange stream."""
import pytest
import torch

from seqgen import DataError, TokenStream
from seqgen_plugins.samplers.sequential import SequentialSampler

STREAM = TokenStream(torch.arange(100, dtype=torch.uint8))  # token == its position


def test_each_row_continues_where_it_ended():
    sampler = SequentialSampler(STREAM, seed=0, batch_size=2, num_steps=5)
    batches = list(sampler.epoch(3))
    assert len(batches) == len(sampler) == 9  # (100 - 4 - 1) // 2 // 5
    for a, b in zip(batches, batches[1:]):
        assert torch.equal(b.inputs[0], a.inputs[-1] + 1)  # next token after the row's end
    x = torch.stack([b.inputs for b in batches])  # [K, T, B]
    offset = int(x[0, 0, 0])
    assert 0 <= offset < 5
    rows = x.permute(2, 0, 1).reshape(2, -1)  # [B, K*T]: each row read across batches
    assert torch.equal(rows, offset + torch.arange(90).view(2, 45))  # rows tile the stream


def test_targets_are_inputs_shifted_by_one_and_int64():
    for batch in SequentialSampler(STREAM, seed=1, batch_size=3, num_steps=4).epoch(0):
        assert batch.inputs.dtype == batch.targets.dtype == torch.int64
        assert batch.inputs.shape == (4, 3) and batch.lengths is None
        assert torch.equal(batch.targets, batch.inputs + 1)


def test_offset_is_random_per_epoch_unless_disabled():
    sampler = SequentialSampler(STREAM, seed=0, batch_size=2, num_steps=10)
    starts = {int(next(sampler.epoch(k)).inputs[0, 0]) for k in range(20)}
    assert len(starts) > 1 and starts <= set(range(10))
    fixed = SequentialSampler(STREAM, seed=0, batch_size=2, num_steps=10, random_offset=False)
    assert {int(next(fixed.epoch(k)).inputs[0, 0]) for k in range(5)} == {0}


def test_too_small_corpus_names_what_one_batch_needs():
    with pytest.raises(DataError, match=r"needs at least 175 tokens for one batch of "
                                        r"4 x \(35\+1\) at a random offset of up to 34, has 100"):
        SequentialSampler(STREAM, seed=0, batch_size=4, num_steps=35)
    with pytest.raises(DataError, match=r"needs at least 101 tokens .* has 100"):
        SequentialSampler(STREAM, seed=0, batch_size=4, num_steps=25, random_offset=False)
    exact = TokenStream(torch.arange(175))  # 4 x 35 + 1, + 34 for the largest offset
    assert len(SequentialSampler(exact, seed=0, batch_size=4, num_steps=35)) == 1
