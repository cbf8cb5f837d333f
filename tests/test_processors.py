"""Logits processors: each built-in's exact kept set, their composition in the `sample`
strategy, third-party processors, and the shorthands pinned to their old tokens."""
from __future__ import annotations

import math

import pytest
import torch

import seqgen
from seqgen.generate import TextGenerator
from seqgen.model import LanguageModel, OneHot
from seqgen.processors import History, LogitsProcessor
from seqgen_plugins.processors import (MinP, RepetitionPenalty, Temperature, TopK, TopP,
                                       TypicalP)
from seqgen_plugins.strategies.sampling import Chain
from test_generate import ABCD, CYCLE
from test_generate_models import Memoryless, bigram, loaded

LETTERS = seqgen.Vocab(list("abcdefgh"))
ROWS = 20000  # one choose() call over this many identical rows gives a distribution
# Distinct, hand-checkable probabilities. Entropy H = 1.1422 nats; -log p = [0.693, 1.204,
# 1.897, 2.996], so |-log p - H| = [0.449, 0.062, 0.755, 1.854]: typicality ranks 1, 0, 2, 3.
PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]])


def kept(processor: LogitsProcessor) -> list[int]:
    """The tokens of PROBS a processor leaves finite (checking survivors are unchanged)."""
    logits = PROBS.log()
    out = processor(logits)
    assert out.shape == logits.shape
    keep = torch.isfinite(out[0]).nonzero().flatten().tolist()
    assert torch.equal(out[0, keep], logits[0, keep])
    return keep


def counts(strategy: seqgen.Strategy, probs: list[float]) -> torch.Tensor:
    """Token counts [V] from ROWS rows of log(probs) in one choose() call."""
    logits = torch.tensor(probs).log().expand(ROWS, -1)
    return torch.bincount(strategy.choose(logits, torch.Generator().manual_seed(0)),
                          minlength=len(probs))


@pytest.fixture(scope="module")
def random_bigram() -> TextGenerator:
    """A bigram model over a-h with fixed random logits (scale 1.5)."""
    V = len(LETTERS)
    model = LanguageModel(V, Memoryless(V), OneHot(V))
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.weight.copy_(torch.randn(V, V, generator=torch.Generator().manual_seed(1))
                                * 1.5)
    return TextGenerator(model, LETTERS)


# -- the shorthands give exactly the tokens they gave before processors existed --------------
# Recorded from the code before the refactor: prompts ["a", "hgf", "cc"] x 2 samples, 15 new
# tokens, seed 7 (one character per token).
PINNED = [
    ("greedy",
     ["efbhgfbhgfbhgfb", "efbhgfbhgfbhgfb", "bhgfbhgfbhgfbhg",
      "bhgfbhgfbhgfbhg", "ccccccccccccccc", "ccccccccccccccc"]),
    ({"type": "greedy", "repetition_penalty": 1.3},
     ["efbhgfbhgfbhgfb", "efbhgfbhgfbhgfb", "bhgfbhgfbhgfbhg",
      "bhgfbhgfbhgfbhg", "ccccccccccccccc", "ccccccccccccccc"]),
    ({"type": "greedy", "repetition_penalty": 4.0},
     ["efbhgfbhccccccc", "efbhgfbhccccccc", "bhccccccccccccc",
      "bhccccccccccccc", "ccccccccccccccc", "ccccccccccccccc"]),
    ("random",
     ["efbhggfbhcccgfb", "dfbbgfbhbgfbdcc", "bfbhgfbhccefbhg",
      "bhgfbgfbhgdfgcg", "cggggggfhgfbgfb", "cecfbhfbggfbgfg"]),
    ({"type": "random", "repetition_penalty": 1.3},
     ["efbhggfbhceegfb", "dfbbgfbhbgfbdcc", "bfbhgfbhbdfcchg",
      "bhefceefgfbhgbh", "cgfcgggfhgfbgfb", "cecfbhgfbhgfbfg"]),
    ({"type": "temperature", "temperature": 0.7},
     ["efbhggfbhdccfbf", "efbbhgfeccdcccc", "bgfcgfbhccefbhg",
      "bhgfbhgfcccfgfb", "cgfbhggfggfbhgf", "cccefgfbgfbfbgg"]),
    ({"type": "temperature", "temperature": 1.5, "top_k": 4, "top_p": 0.8,
      "repetition_penalty": 1.3},
     ["efbhggfbhbgfcef", "dcccegfgbgfbbgf", "bfbhgfbhbfcefgg",
      "bhccefbggfbhgbh", "cggggggfggfbhce", "cefccgfbggfbhgg"]),
    ({"type": "temperature", "temperature": 0, "repetition_penalty": 2.5},
     ["efbhgfbhccccccc", "efbhgfbhccccccc", "bhccccccccccccc",
      "bhccccccccccccc", "ccccccccccccccc", "ccccccccccccccc"]),
    ({"type": "top-k", "k": 3},
     ["efbhggfbhcccefb", "dcccefbhbhgfbgf", "bgfggfbhccefbhg",
      "bhgfbhcehgfbhce", "cggggggfggfbhgf", "cecefgfbggfbhgg"]),
    ({"type": "top-k", "k": 5, "temperature": 0.6, "top_p": 0.9, "repetition_penalty": 1.3},
     ["efbhggfbhcccfbg", "efbfbhggfbhgfbg", "bgfcgfbhgfbhggg",
      "bhgfbhgfcccfgfb", "cgfbhggfggfbhgf", "cefbfgfbhgfbhgg"]),
    ({"type": "top-k", "k": 1, "temperature": 2.0},
     ["efbhgfbhgfbhgfb", "efbhgfbhgfbhgfb", "bhgfbhgfbhgfbhg",
      "bhgfbhgfbhgfbhg", "ccccccccccccccc", "ccccccccccccccc"]),
    ({"type": "top-p", "p": 0.7},
     ["efbhggfbhgfbhgf", "dfbbhgfgfbgfbgf", "bgfggfbhgfbhggg",
      "bhgfbhgfgfbhgfb", "cggggggfggfbhgf", "cefbbhgfbhgfbgg"]),
    ({"type": "top-p", "p": 0.85, "temperature": 1.3, "top_k": 6, "repetition_penalty": 1.3},
     ["efbhggfbhbfbhgf", "dfbbgfbhbgfbefb", "cefggfbhbegfbhg",
      "cgfbgfbggfbhgbh", "cgfcgggfggfbgfb", "efbhchcefefbgfg"]),
    ({"type": "top-p", "p": 1.0, "repetition_penalty": 0.8},
     ["efbhggfbhcccfbf", "dfbbgfbhbgfbefb", "bfbhgfbhccefbhg",
      "bhgfbgfbhgefgef", "cggggggfhgfbgfb", "cecfbhdccfbfbfg"]),
]


def pinned_call(model: TextGenerator, strategy: seqgen.Strategy) -> list[str]:
    samples = model.generate(["a", "hgf", "cc"], strategy, max_new_tokens=15, num_samples=2,
                             seed=7)
    return [s.text for s in samples]


@pytest.mark.parametrize("spec, texts", PINNED, ids=[str(i) for i in range(len(PINNED))])
def test_shorthands_give_the_tokens_they_always_gave(session, random_bigram, spec, texts):
    assert pinned_call(random_bigram, session.strategy(spec)) == texts


def test_a_sample_spec_of_the_same_chain_gives_the_same_tokens(session, random_bigram):
    def texts(spec):
        return pinned_call(random_bigram, session.strategy(spec))
    chain = {"type": "sample", "processors": [
        {"type": "repetition-penalty", "penalty": 1.3},
        {"type": "temperature", "temperature": 1.5}, {"type": "top-k", "k": 4},
        {"type": "top-p", "p": 0.8}]}
    assert session.strategy(chain).describe() == \
        "sample(repetition-penalty(1.3) -> temperature(1.5) -> top-k(4) -> top-p(0.8) -> draw)"
    assert texts(chain) == texts({"type": "temperature", "temperature": 1.5, "top_k": 4,
                                  "top_p": 0.8, "repetition_penalty": 1.3})
    assert texts({"type": "sample", "choice": "argmax",
                  "processors": [{"type": "repetition-penalty", "penalty": 4.0}]}) == \
        texts({"type": "greedy", "repetition_penalty": 4.0})


# -- each built-in on a hand-computed example --------------------------------------------------
def test_temperature_divides_and_zero_keeps_the_first_argmax():
    logits = torch.tensor([[1.0, 3.0, 3.0, -2.0]])
    assert Temperature(0.5)(logits).tolist() == [[2.0, 6.0, 6.0, -4.0]]
    assert Temperature(0)(logits).tolist() == [[-math.inf, 3.0, -math.inf, -math.inf]]
    assert Temperature(0).greedy and not Temperature(0.5).greedy


@pytest.mark.parametrize("k, want", [(1, [0]), (2, [0, 1]), (3, [0, 1, 2]), (9, [0, 1, 2, 3])])
def test_top_k_keeps_the_k_most_likely(k, want):
    assert kept(TopK(k)) == want


@pytest.mark.parametrize("p, want", [(0.4, [0]), (0.6, [0, 1]), (0.9, [0, 1, 2]),
                                     (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_the_most_likely_until_their_mass_reaches_p(p, want):
    assert kept(TopP(p)) == want


@pytest.mark.parametrize("p, want", [(0.7, [0]), (0.5, [0, 1]), (0.25, [0, 1, 2]),
                                     (0.05, [0, 1, 2, 3]), (0.0, [0, 1, 2, 3])])
def test_min_p_keeps_tokens_at_least_p_times_the_best(p, want):
    # thresholds p * 0.5: 0.35, 0.25, 0.125, 0.025
    assert kept(MinP(p)) == want


@pytest.mark.parametrize("p, want", [(0.25, [1]), (0.5, [0, 1]), (0.85, [0, 1, 2]),
                                     (0.97, [0, 1, 2, 3])])
def test_typical_p_keeps_the_most_typical_until_their_mass_reaches_p(p, want):
    # ranked 1 (0.3), 0 (0.5: 0.8 in all), 2 (0.95), 3: not the most likely first
    assert kept(TypicalP(p)) == want


def test_typical_p_ranks_only_what_earlier_filters_left():
    # after top-k 3 the row is [0.526, 0.316, 0.158]: H = 0.993, |-log p - H| = [0.351,
    # 0.159, 0.853], so token 1 ranks first, then 0 (mass 0.842 >= 0.8); token 3 stays out
    logits = TopK(3)(PROBS.log())
    assert torch.isfinite(TypicalP(0.8)(logits)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(TypicalP(0.99)(logits)).tolist() == [[True, True, True, False]]


def test_repetition_penalty_lowers_seen_tokens_of_each_row():
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0], [2.0, -1.0, 0.5, -3.0]])
    seen = torch.tensor([[True, True, False, False], [False, False, True, True]])
    out = RepetitionPenalty(2.0)(logits, History(seen))
    assert out.tolist() == [[1.0, -2.0, 0.5, -3.0], [2.0, -1.0, 0.25, -6.0]]
    assert RepetitionPenalty(2.0).needs_history


def test_every_built_in_is_registered_and_builds_from_its_schema_defaults(session):
    names = {c.name: c for c in session.registry.all("processor")}
    assert set(names) == {"repetition-penalty", "temperature", "top-k", "top-p", "min-p",
                          "typical-p"}
    for name, c in names.items():
        options = c.schema["properties"]
        assert c.description and all(o.get("description") for o in options.values()), name
        built = session.build("processor", {"type": name,
                                            **{k: o["default"] for k, o in options.items()}})
        assert isinstance(built, LogitsProcessor) and built.warnings() == [], name


# -- the sample strategy: processors in order, then a choice -----------------------------------
def test_processors_apply_in_list_order():
    # [0.4, 0.35, 0.25]: top-k 2 then top-p 0.5 renormalises to [0.53, 0.47] and keeps
    # token 0 alone; top-p 0.5 first keeps {0, 1}, and top-k 2 keeps both
    probs = [0.4, 0.35, 0.25]
    assert counts(Chain([TopK(2), TopP(0.5)]), probs).tolist() == [ROWS, 0, 0]
    mixed = counts(Chain([TopP(0.5), TopK(2)]), probs)
    assert mixed[2] == 0 and torch.allclose(mixed[:2] / ROWS, torch.tensor([0.4, 0.35]) / 0.75,
                                            atol=0.015)


def test_draws_follow_what_min_p_leaves():
    got = counts(Chain([MinP(0.25)]), PROBS[0].tolist())
    assert got[3] == 0
    assert torch.allclose(got[:3] / ROWS, PROBS[0, :3] / 0.95, atol=0.015)


def test_argmax_choice_and_what_makes_a_chain_deterministic():
    logits = torch.randn(50, 7)
    assert torch.equal(Chain([TopK(3)], "argmax").choose(logits), logits.argmax(-1))
    assert Chain([]).stochastic and Chain([Temperature(0.7), MinP(0.1)]).stochastic
    assert not Chain([], "argmax").stochastic
    assert not Chain([Temperature(0.7), TopK(1)]).stochastic


def test_history_processors_are_skipped_without_history():
    # the trainer calls choose(logits, generator): the penalty needs history, so it is
    # skipped, as it always was in training
    chain = Chain([RepetitionPenalty(100.0)], "argmax")
    logits = torch.tensor([[3.0, 2.0, 1.0]])
    assert chain.needs_history and not Chain([TopK(2)]).needs_history
    assert chain.choose(logits).tolist() == [0]
    assert chain.choose(logits, None, History(torch.tensor([[True, False, False]]))).tolist() \
        == [1]


@pytest.mark.parametrize("processors, notes", [
    ([Temperature(0), TopK(5), MinP(0.1)],
     ["temperature(0) keeps a single token (greedy): top-k(5) and min-p(0.1) after it have "
      "no effect"]),
    ([TopK(1), TopP(0.9)],
     ["top-k(1) keeps a single token (greedy): top-p(0.9) after it has no effect"]),
    ([RepetitionPenalty(1.0), Temperature(1.0), TopP(1.0), MinP(0.0), TypicalP(1.0)],
     ["repetition-penalty(1) has no effect", "temperature(1) has no effect",
      "top-p(1) keeps every token: it has no effect",
      "min-p(0) keeps every token: it has no effect",
      "typical-p(1) keeps every token: it has no effect"]),
    ([RepetitionPenalty(1.3), Temperature(0.7), TopK(5), TopP(0.9), MinP(0.05),
      TypicalP(0.9)], []),
])
def test_sample_names_processors_without_effect(processors, notes):
    assert Chain(processors).warnings() == notes


def test_sample_spec_defaults_to_drawing_from_the_model(session):
    s = session.strategy("sample")
    assert (s.processors, s.choice, s.stochastic) == ([], "draw", True)
    assert s.describe() == "sample(draw)"


# -- third-party strategies and processors ------------------------------------------------------
class ArgmaxOnly(seqgen.Strategy):
    """A third-party strategy of the oldest kind: choose(logits, generator), nothing else."""

    def choose(self, logits, generator=None):
        return logits.argmax(-1)


def test_strategies_that_only_choose_still_generate(random_bigram):
    assert pinned_call(random_bigram, ArgmaxOnly()) == PINNED[0][1]     # greedy's


class Ban(LogitsProcessor):
    def __init__(self, token: int):
        self.token = token

    def __call__(self, logits, history=None):
        return logits.index_fill(-1, torch.tensor([self.token]), float("-inf"))


class BanSeen(LogitsProcessor):
    needs_history = True

    def __call__(self, logits, history=None):
        return logits.masked_fill(history.seen, float("-inf"))


class ProcessorPlugin:
    __name__ = "bans"

    @seqgen.hookimpl
    def register_processors(self, register):
        register("ban", Ban, {"type": "object", "required": ["token"],
                              "properties": {"token": {"type": "integer", "minimum": 0}}},
                 "never pick this token id")
        register("ban-seen", BanSeen, {"type": "object", "properties": {}},
                 "never pick a token the row has seen")


def test_hook_register_processors():
    session = seqgen.Session([ProcessorPlugin()], entry_points=False)
    assert session.component("processor", "ban").plugin == "bans"
    model = loaded(bigram(CYCLE, ABCD), ABCD)   # a -> b -> c -> a with p 0.9, else d

    def text(processors, n=5):
        strategy = session.strategy({"type": "sample", "processors": processors})
        return model.generate("a", strategy, max_new_tokens=n)[0].text
    greedy = {"type": "top-k", "k": 1}
    assert text([greedy]) == "bcabc"
    # b banned: a -> d (0.1), d -> a (0.5; b 0.5 banned), ...
    assert text([{"type": "ban", "token": ABCD.stoi["b"]}, greedy]) == "dadad"
    # seen tokens banned (history reaches the plugin's processor): a -> b -> c -> d
    assert text([{"type": "ban-seen"}, greedy], 3) == "bcd"
