"""Decoding strategies on crafted logits: exact semantics, composition order, warnings."""
from __future__ import annotations

import math

import pytest
import torch

import seqgen
from seqgen_plugins.processors.filters import nucleus

ROWS = 20000  # one choose() call over this many identical rows gives a distribution


@pytest.fixture
def strategy(session):
    return session.strategy


def draws(strategy, probs: list[float], seed: int = 0) -> torch.Tensor:
    """Token counts [V] from ROWS rows of log(probs) in one choose() call."""
    logits = torch.tensor(probs).log().expand(ROWS, -1)
    tokens = strategy.choose(logits, torch.Generator().manual_seed(seed))
    assert tokens.shape == (ROWS,) and tokens.dtype == torch.int64
    return torch.bincount(tokens, minlength=len(probs))


def test_every_strategy_is_registered_with_its_own_options(session):
    props = {c.name: set(c.schema["properties"]) for c in session.registry.all("strategy")}
    assert props == {
        "greedy": {"repetition_penalty"},
        "random": {"repetition_penalty"},
        "temperature": {"temperature", "top_k", "top_p", "repetition_penalty"},
        "top-k": {"k", "temperature", "top_p", "repetition_penalty"},
        "top-p": {"p", "temperature", "top_k", "repetition_penalty"},
        "sample": {"processors", "choice"},
        "beam": {"width", "length_penalty"},
        "teacher-forcing": {"ratio", "decay", "min_ratio", "free", "reference"},
    }


def test_options_are_validated_with_their_path(strategy):
    with pytest.raises(seqgen.SpecError, match=r"\$\.strategy\.k: 0 is less than the minimum"):
        strategy({"type": "top-k", "k": 0})
    with pytest.raises(seqgen.SpecError, match=r"\$\.strategy: Additional properties"):
        strategy({"type": "greedy", "k": 3})


def test_greedy_is_argmax(strategy):
    logits = torch.randn(50, 7)
    assert torch.equal(strategy("greedy").choose(logits), logits.argmax(-1))


def test_random_follows_the_full_distribution(strategy):
    counts = draws(strategy("random"), [0.5, 0.3, 0.15, 0.05])
    assert torch.allclose(counts / ROWS, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.015)


def test_temperature_sharpens_as_softmax_of_logits_over_t(strategy):
    probs = torch.tensor([0.5, 0.3, 0.2])
    want = torch.softmax(probs.log() / 0.5, -1)                       # [0.658, 0.237, 0.105]
    counts = draws(strategy({"type": "temperature", "temperature": 0.5}), probs.tolist())
    assert torch.allclose(counts / ROWS, want, atol=0.015)


@pytest.mark.parametrize("spec", [{"type": "temperature", "temperature": 0},
                                  {"type": "top-k", "k": 3, "temperature": 0},
                                  {"type": "top-p", "p": 0.5, "temperature": 0},
                                  {"type": "top-k", "k": 1, "temperature": 2.0}])
def test_temperature_zero_and_top_k_one_are_greedy(strategy, spec):
    s = strategy(spec)
    logits = torch.randn(200, 9)
    assert not s.stochastic
    assert torch.equal(s.choose(logits, torch.Generator().manual_seed(0)), logits.argmax(-1))


def test_top_k_never_leaves_the_top_k(strategy):
    probs = [0.05, 0.3, 0.02, 0.25, 0.2, 0.18]                  # top 3: tokens 1, 3, 4
    counts = draws(strategy({"type": "top-k", "k": 3}), probs)
    assert set(counts.nonzero().flatten().tolist()) == {1, 3, 4}
    assert torch.allclose(counts[[1, 3, 4]] / ROWS, torch.tensor([0.3, 0.25, 0.2]) / 0.75,
                          atol=0.015)


def test_top_k_keeps_exactly_k_even_with_ties(strategy):
    counts = draws(strategy({"type": "top-k", "k": 2}), [0.25, 0.25, 0.25, 0.25])
    assert (counts > 0).sum() == 2


@pytest.mark.parametrize("p, kept", [(0.4, [0]), (0.7, [0, 1]), (0.8, [0, 1, 2]),
                                     (0.95, [0, 1, 2, 3, 4])])
def test_top_p_keeps_the_smallest_set_reaching_p(p, kept):
    probs = torch.tensor([[0.5, 0.25, 0.125, 0.0625, 0.0625]])
    out = nucleus(probs.log(), p)
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == kept
    assert torch.equal(out[0, kept], probs.log()[0, kept])          # survivors unchanged


def test_top_p_works_on_unsorted_rows_independently():
    logits = torch.tensor([[0.1, 0.6, 0.3], [0.7, 0.2, 0.1]]).log()
    out = nucleus(logits, 0.65)
    assert torch.isfinite(out).tolist() == [[False, True, True], [True, False, False]]


def test_top_p_draws_stay_in_the_nucleus(strategy):
    counts = draws(strategy({"type": "top-p", "p": 0.7}), [0.125, 0.5, 0.0625, 0.25, 0.0625])
    assert set(counts.nonzero().flatten().tolist()) == {1, 3}


def test_temperature_applies_before_top_p(strategy):
    # At T=1 p=0.6 keeps tokens {0, 1}; at T=0.1 token 0 alone holds > 0.99 of the mass.
    # Were top-p applied first, token 1 would still be drawn about 0.6% of the time.
    counts = draws(strategy({"type": "temperature", "temperature": 0.1, "top_p": 0.6}),
                   [0.5, 0.3, 0.2])
    assert counts.tolist() == [ROWS, 0, 0]


def test_top_k_applies_before_top_p(strategy):
    # top-k 2 renormalises [0.4, 0.35] to [0.53, 0.47], so p=0.5 then keeps token 0 alone;
    # top-p first would keep {0, 1} (0.4 < 0.5).
    counts = draws(strategy({"type": "top-k", "k": 2, "top_p": 0.5}), [0.4, 0.35, 0.25])
    assert counts.tolist() == [ROWS, 0, 0]


def test_the_repetition_penalty_asks_the_generator_for_history(strategy):
    for name in ("greedy", "random", "temperature", "top-k", "top-p"):
        assert not strategy(name).needs_history
        s = strategy({"type": name, "repetition_penalty": 1.3})
        assert s.needs_history and "repetition_penalty=1.3" in s.describe()
    assert not strategy("beam").needs_history


@pytest.mark.parametrize("spec, notes", [
    ({"type": "top-k", "k": 5, "temperature": 0},
     ["temperature 0 is greedy decoding: k has no effect"]),
    ({"type": "temperature", "temperature": 0, "top_k": 3, "top_p": 0.5},
     ["temperature 0 is greedy decoding: top_k and top_p have no effect"]),
    ({"type": "top-p", "p": 0.5, "top_k": 1, "temperature": 0.7},
     ["top_k 1 keeps a single token (greedy): temperature and p have no effect"]),
    ({"type": "temperature", "temperature": 0.7, "top_p": 1.0},
     ["top_p 1 keeps every token: it has no effect"]),
    ({"type": "teacher-forcing", "ratio": 1.0, "free": "sample"},
     ["ratio 1 without decay always feeds the reference: 'free' has no effect"]),
    ({"type": "teacher-forcing", "reference": "abc", "ratio": 0.5},
     ["ratio only matters in training: scoring a reference always follows it"]),
    ({"type": "top-k", "k": 5, "temperature": 0.7, "top_p": 0.9}, []),
    ({"type": "greedy"}, []),
])
def test_knobs_without_effect_are_named(strategy, spec, notes):
    assert strategy(spec).warnings() == notes


def test_teacher_forcing_keeps_the_trainers_interface(strategy):
    s = strategy({"type": "teacher-forcing", "ratio": 0.8, "decay": 0.5, "min_ratio": 0.3})
    assert [s.teacher_ratio(e) for e in range(3)] == [0.8, 0.4, 0.3]
    logits = torch.randn(4, 6)
    assert torch.equal(s.choose(logits, torch.Generator()), logits.argmax(-1))
    assert s.describe() == "teacher-forcing(ratio=0.8, decay=0.5)"


def test_descriptions_name_the_options_as_the_user_set_them(strategy):
    assert strategy({"type": "top-k", "k": 5, "temperature": 0.7}).describe() == \
        "top-k(k=5, temperature=0.7)"
    assert strategy({"type": "top-p", "p": 0.9}).describe() == "top-p(p=0.9, temperature=1)"
    assert strategy("beam").describe() == "beam(width=4, length_penalty=1)"
    assert math.isclose(strategy({"type": "beam", "length_penalty": 0.5}).length_penalty, 0.5)
