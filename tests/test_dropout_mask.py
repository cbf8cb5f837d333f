"""seqgen.dropout's mask (seqgen/seeding.py keep_mask): 16 random bits an entry, drawn
from the run's generator, exactly 0 or 1/keep, kept at the asked rate."""
import pytest
import torch

import seqgen
from seqgen.seeding import dropout_generator, generator, keep_mask


def draw(keep, shape=(200, 64, 33), seed=0):
    return keep_mask(torch.Size(shape), keep, generator(seed, "dropout"), torch.device("cpu"),
                     torch.float32)


@pytest.mark.parametrize("keep", [0.5, 0.7, 0.9, 0.05])
def test_the_mask_keeps_at_the_asked_rate_and_scales_by_one_over_keep(keep):
    mask = draw(keep)                                               # 422,400 entries
    values = mask.unique().tolist()
    assert values[0] == 0.0 and values[1:] == [pytest.approx(1 / keep)]
    kept = float((mask != 0).float().mean())
    # binomial standard error at n = 422,400 is below 8e-4: 5 of them
    assert abs(kept - keep) < 4e-3, kept


def test_the_bits_are_independent_across_the_four_entries_of_a_draw():
    """Entries 4k..4k+3 share one int64: each position keeps at the rate, and neighbours
    are uncorrelated (a shared bit pattern would show as correlation)."""
    mask = (draw(0.5, shape=(400_000,)) != 0).float().view(-1, 4)        # [draws, 4]
    assert torch.allclose(mask.mean(0), torch.full((4,), 0.5), atol=6e-3)
    both = (mask[:, 0] * mask[:, 1]).mean()
    assert abs(float(both) - 0.25) < 6e-3


def test_the_mask_is_the_generators_and_leaves_torchs_global_rng_alone():
    before = torch.get_rng_state()
    assert torch.equal(draw(0.7, seed=3), draw(0.7, seed=3))
    assert not torch.equal(draw(0.7, seed=3), draw(0.7, seed=4))
    assert torch.equal(before, torch.get_rng_state())


def test_dropout_applies_the_mask_and_odd_sizes_work():
    x = torch.randn(7, 5, 3)                                       # 105: not a multiple of 4
    with dropout_generator(generator(1, "dropout")):
        y = seqgen.dropout(x, 0.25)
    mask = draw(0.75, shape=(7, 5, 3), seed=1)
    torch.testing.assert_close(y, x * mask)
    assert seqgen.dropout(x, 0.25, training=False) is x


def test_gradients_flow_through_the_kept_entries_only():
    x = torch.randn(50, 40, requires_grad=True)
    with dropout_generator(generator(2, "dropout")):
        seqgen.dropout(x, 0.4).sum().backward()
    mask = draw(0.6, shape=(50, 40), seed=2)
    torch.testing.assert_close(x.grad, mask)
