"""Strategies with their own search: beam search and teacher forcing (scoring a reference)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

import seqgen
from test_generate_models import FLOOR, bigram, loaded, logp, random_checkpoint

# From "a", greedy takes "b" (0.6) and then meets three equal choices (0.34 at best);
# "c" (0.4) leads to "d" for sure: the best two-token continuation is "cd".
MYOPIC = {"a": {"b": 0.6, "c": 0.4}, "b": {"x": 0.34, "y": 0.33, "z": 0.33},
          "c": {"d": 1.0}, "d": {"d": 1.0}, "x": {"d": 1.0}, "y": {"d": 1.0}, "z": {"d": 1.0}}
CYCLE = {"a": {"b": 0.9, "d": 0.1}, "b": {"c": 0.9, "d": 0.1}, "c": {"a": 0.9, "d": 0.1},
         "d": {"a": 0.5, "b": 0.5}}


def model_of(table, chars, **kw):
    vocab = seqgen.Vocab(list(chars), **{k: v for k, v in kw.items() if k == "specials"})
    return loaded(bigram(table, vocab), vocab, kw.get("task", "lm"))


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    from conftest import TINY_SPEC
    path = random_checkpoint(tmp_path_factory.mktemp("s") / "model.safetensors", TINY_SPEC)
    return seqgen.load(path, entry_points=False)


LINES = {"<bos>": {"a": 0.5, "b": 0.5}, "a": {"<eos>": 0.45, "a": 0.55},
         "b": {"b": 0.7, "<eos>": 0.3}}


@pytest.fixture
def lines():
    return model_of(LINES, "ab", specials=["<bos>", "<eos>"], task="lines")


# -- beam search ----------------------------------------------------------------------------
def test_beam_beats_myopic_greedy():
    model = model_of(MYOPIC, "abcdxyz")
    greedy = model.generate("a", "greedy", max_new_tokens=2)[0]
    beam = model.generate("a", {"type": "beam", "width": 2}, max_new_tokens=2)[0]
    assert greedy.text == "bx" and beam.text == "cd"
    assert greedy.score == pytest.approx(math.log(0.6 * 0.34), abs=1e-6)
    assert beam.score == pytest.approx(math.log(0.4) / 2, abs=1e-6)  # length_penalty 1
    assert beam.score * 2 > greedy.score
    assert beam.logprobs == pytest.approx([math.log(0.4), 0.0], abs=1e-6)


def test_beam_of_width_one_is_greedy(lstm):
    prompts = ["the ", "a", "cat sees "]
    greedy = [s.text for s in lstm.generate(prompts, "greedy", max_new_tokens=25)]
    beam = [s.text for s in lstm.generate(prompts, {"type": "beam", "width": 1},
                                          max_new_tokens=25)]
    assert beam == greedy


def test_beam_of_width_one_is_greedy_with_an_end_token(lines):
    greedy = lines.generate("", "greedy", max_new_tokens=10)[0]
    beam = lines.generate("", {"type": "beam", "width": 1, "length_penalty": 0},
                          max_new_tokens=10)[0]
    assert greedy.text == "a" * 10                      # a -> a (0.55) beats a -> <eos>
    assert (beam.text, beam.logprobs) == (greedy.text, greedy.logprobs)


def test_wide_beam_is_exhaustive_search():
    torch.manual_seed(0)
    chars = "abc"
    probs = torch.softmax(torch.randn(3, 3) * 2, -1)
    table = {p: {n: float(probs[i, j]) for j, n in enumerate(chars)} for i, p in enumerate(chars)}
    model = model_of(table, chars)

    def total(seq, prev="a"):
        return sum(logp(table, a, b) for a, b in zip(prev + seq, seq))
    ranked = sorted(("".join(s) for s in itertools.product(chars, repeat=3)), key=total,
                    reverse=True)
    # width 9 holds every two-token prefix: nothing is pruned before the last step
    found = model.generate("a", {"type": "beam", "width": 9}, max_new_tokens=3, num_samples=5)
    assert [s.text for s in found] == ranked[:5]
    assert [s.score for s in found] == pytest.approx([total(s) / 3 for s in ranked[:5]],
                                                     abs=1e-5)


def test_beam_ends_hypotheses_at_eos_and_ranks_them(lines):
    found = lines.generate("", {"type": "beam", "width": 3, "length_penalty": 0},
                           max_new_tokens=6, num_samples=3)

    def ended_line(text):  # log p of <bos> text <eos>
        seq = ["<bos>", *text, "<eos>"]
        return sum(logp(LINES, a, b) for a, b in zip(seq, seq[1:]))
    assert found[0].text == "a"                          # 0.5 * 0.45: the best line
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    for s in found[:2]:                                   # ended at <eos>, scored with it
        assert s.score == pytest.approx(ended_line(s.text), abs=1e-5)
        assert len(s.logprobs) == len(s.text)


def test_length_penalty_trades_length_for_mean_log_prob(lines):
    short = lines.generate("", {"type": "beam", "width": 4, "length_penalty": 0},
                           max_new_tokens=8)[0]
    normalised = lines.generate("", {"type": "beam", "width": 4, "length_penalty": 1},
                                max_new_tokens=8)[0]
    assert short.text == "a"
    # per-token: "b"*n + eos has mean log p -> log 0.7 as n grows, better than "a"+eos
    # at max_new_tokens the live beams count too: eight b's never pay for <eos>
    assert normalised.text == "b" * 8
    assert normalised.score == pytest.approx((math.log(0.5) + 7 * math.log(0.7)) / 8, abs=1e-5)


def test_beam_stops_at_stop_strings():
    model = model_of(CYCLE, "abcd")
    found = model.generate("a", {"type": "beam", "width": 2}, max_new_tokens=10,
                           num_samples=2, stop=["ca"])
    assert found[0].text == "b"
    assert all("ca" not in s.text for s in found)


def test_beam_refuses_more_samples_than_its_width(lstm):
    with pytest.raises(seqgen.GenerationError, match="beam search of width 2 finds 2 "
                                                     "sequences per prompt; num_samples=3"):
        lstm.generate("a", {"type": "beam", "width": 2}, num_samples=3)


def test_beam_warns_when_length_penalty_cannot_matter(lstm):
    with pytest.warns(seqgen.GenerationWarning, match="length_penalty has no effect") as record:
        lstm.generate("a", {"type": "beam", "length_penalty": 0.5}, max_new_tokens=3)
    assert record[0].filename == __file__                   # the caller's line, not beam.py


def test_beam_batches_prompts_of_different_lengths(lstm):
    spec = {"type": "beam", "width": 3}
    together = lstm.generate(["the cat ", "a"], spec, max_new_tokens=12, num_samples=2)
    apart = [s for p in ["the cat ", "a"] for s in lstm.generate(p, spec, max_new_tokens=12,
                                                                 num_samples=2)]
    assert [(s.prompt, s.text) for s in together] == [(s.prompt, s.text) for s in apart]
    assert [s.score for s in together] == pytest.approx([s.score for s in apart], abs=1e-5)


def test_beam_stream_gives_the_best_text_at_once(lstm):
    spec = {"type": "beam", "width": 3}
    assert list(lstm.stream("a", spec, max_new_tokens=10)) == \
        [lstm.generate("a", spec, max_new_tokens=10)[0].text]


# -- teacher forcing: following and scoring a reference -------------------------------------
def test_teacher_forcing_scores_the_reference_after_each_prompt():
    model = model_of(CYCLE, "abcd")
    spec = {"type": "teacher-forcing", "reference": "bcd"}
    after_a, after_c = model.generate(["a", "c"], spec)
    assert after_a.text == after_c.text == "bcd"
    assert after_a.logprobs == pytest.approx(
        [math.log(0.9), math.log(0.9), math.log(0.1)], abs=1e-6)
    assert after_c.logprobs[0] == pytest.approx(math.log(FLOOR), abs=1e-3)      # c -> b
    assert after_a.score == pytest.approx(sum(after_a.logprobs), abs=1e-6)
    assert after_a.perplexity == pytest.approx(math.exp(-sum(after_a.logprobs) / 3), abs=1e-6)
    assert after_a.strategy == "teacher-forcing(reference)"


def test_teacher_forcing_agrees_with_score(lstm):
    text = "the cat sees a dog."
    scored = lstm.score(text)
    forced = lstm.generate(text[0], {"type": "teacher-forcing", "reference": text[1:]})[0]
    assert scored.tokens == len(forced.logprobs) == len(text) - 1
    assert -sum(forced.logprobs) / len(forced.logprobs) == pytest.approx(scored.loss, abs=1e-5)


def test_teacher_forcing_needs_a_reference(lstm):
    with pytest.raises(seqgen.GenerationError, match="teacher-forcing in generation follows a "
                                                     "reference text and scores it"):
        lstm.generate("a", "teacher-forcing")


def test_teacher_forcing_reference_obeys_on_unknown(lstm):
    with pytest.raises(seqgen.GenerationError, match="'Z' at 1"):
        lstm.generate("a", {"type": "teacher-forcing", "reference": "bZ"})
    s = lstm.generate("a", {"type": "teacher-forcing", "reference": "bZ"}, on_unknown="skip")[0]
    assert s.text == "b" and len(s.logprobs) == 1


def test_teacher_forcing_warns_that_samples_are_identical(lstm):
    with pytest.warns(seqgen.GenerationWarning, match="teacher-forcing scores one reference"):
        samples = lstm.generate("a", {"type": "teacher-forcing", "reference": "bc"},
                                num_samples=2)
    assert samples[0] == samples[1]
