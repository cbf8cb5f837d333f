"""The generation loop: batching, carried state, stopping, prompts, seeds, threads,
streaming and warnings, on crafted bigram models and a random-weight LSTM."""
from __future__ import annotations

import math
import threading
import warnings

import pytest
import torch

import seqgen
from test_generate_models import bigram, loaded, logp, random_checkpoint

# a -> b -> c -> a ... almost surely; d leads nowhere in particular
CYCLE = {"a": {"b": 0.9, "d": 0.1}, "b": {"c": 0.9, "d": 0.1}, "c": {"a": 0.9, "d": 0.1},
         "d": {"a": 0.5, "b": 0.5}}
ABCD = seqgen.Vocab(list("abcd"))


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    from conftest import TINY_SPEC
    path = random_checkpoint(tmp_path_factory.mktemp("g") / "model.safetensors", TINY_SPEC)
    return seqgen.load(path, entry_points=False)


@pytest.fixture
def cycle():
    return loaded(bigram(CYCLE, ABCD), ABCD)


def spy_calls(model) -> list[tuple[int, int, bool]]:
    """Record (T, B, lengths given) of every model call, and (1, B, False) of every call of
    a stepper it hands out (one token per row). `del model.forward, model.stepper` ends it."""
    calls, forward, stepper = [], model.forward, model.stepper

    def recording(ids, state=None, lengths=None):
        calls.append((ids.shape[0], ids.shape[1], lengths is not None))
        return forward(ids, state, lengths)

    def recording_stepper(state):
        step = stepper(state)

        def one_token(ids):                                                  # [B]
            calls.append((1, ids.shape[0], False))
            return step(ids)
        return one_token
    model.forward, model.stepper = recording, recording_stepper
    return calls


# -- batching and the carried state ---------------------------------------------------------
def test_prompts_run_once_then_one_token_per_call(lstm):
    calls = spy_calls(lstm.model)
    try:
        samples = lstm.generate(["the cat ", "a", "the dog"], "random", max_new_tokens=20,
                                num_samples=2)
    finally:
        del lstm.model.forward, lstm.model.stepper
    assert len(samples) == 6
    # one whole-sequence call over the padded prompts (with lengths), then T=1 per token;
    # the last token needs no call: 1 + 19 calls, never the prefix again
    assert calls == [(8, 6, True)] + [(1, 6, False)] * 19


def test_samples_come_prompt_by_prompt(lstm):
    samples = lstm.generate(["ab", "c"], "random", max_new_tokens=5, num_samples=3, seed=2)
    assert [s.prompt for s in samples] == ["ab"] * 3 + ["c"] * 3
    assert len({s.text for s in samples[:3]}) > 1            # three different draws


def test_batched_rows_equal_one_at_a_time(lstm):
    prompts = ["the old cat ", "a", "the dog sees "]
    batched = [s.text for s in lstm.generate(prompts, "greedy", max_new_tokens=15)]
    single = [lstm.generate(p, "greedy", max_new_tokens=15)[0].text for p in prompts]
    assert batched == single and len(set(batched)) == 3


def test_logprobs_are_the_models(cycle):
    s = cycle.generate("a", "greedy", max_new_tokens=4)[0]
    assert s.text == "bcab"
    assert s.logprobs == pytest.approx([math.log(0.9)] * 4, abs=1e-6)
    assert s.score == pytest.approx(4 * math.log(0.9), abs=1e-5)
    assert s.perplexity == pytest.approx(1 / 0.9, abs=1e-5)


def test_zero_new_tokens(cycle):
    s = cycle.generate("a", "greedy", max_new_tokens=0)[0]
    assert (s.text, s.logprobs, s.score, s.perplexity) == ("", [], 0, None)


# -- stopping -------------------------------------------------------------------------------
def test_stop_string_cuts_before_it_and_ends_the_loop(cycle):
    calls = spy_calls(cycle.model)
    s = cycle.generate("a", "greedy", max_new_tokens=50, stop=["ca"])[0]
    assert s.text == "b"                     # generated "bca": cut before "ca"
    assert s.logprobs == pytest.approx([math.log(0.9)], abs=1e-6)
    assert s.score == pytest.approx(3 * math.log(0.9), abs=1e-5)   # the stop's tokens count
    assert len(calls) == 3                   # prompt + 2 steps, not 50


def test_the_earliest_stop_wins_and_rows_stop_on_their_own(cycle):
    samples = cycle.generate(["a", "c"], "greedy", max_new_tokens=20, stop=["bcab", "c"])
    assert [s.text for s in samples] == ["b", "ab"]


def test_stops_are_looked_for_in_the_generated_text_only(cycle):
    # the prompt holds "ab" already; generation goes on to "cab" and stops there
    assert cycle.generate("ab", "greedy", max_new_tokens=9, stop=["ab"])[0].text == "c"


def test_eos_ends_a_line(tmp_path):
    vocab = seqgen.Vocab(list("ab"), specials=["<bos>", "<eos>"])
    table = {"<bos>": {"a": 0.8, "b": 0.2}, "a": {"b": 0.7, "<eos>": 0.3},
             "b": {"<eos>": 0.6, "a": 0.4}}
    model = loaded(bigram(table, vocab), vocab, task="lines")
    s = model.generate("", "greedy", max_new_tokens=10)[0]
    assert s.text == "ab"
    assert s.logprobs == pytest.approx([logp(table, "<bos>", "a"), logp(table, "a", "b")],
                                       abs=1e-5)
    assert s.score == pytest.approx(sum(s.logprobs) + logp(table, "b", "<eos>"), abs=1e-5)


def test_bad_stop_strings_are_refused(cycle):
    with pytest.raises(seqgen.GenerationError, match="stop strings must be non-empty"):
        cycle.generate("a", "greedy", stop=[""])


# -- prompts outside the vocabulary ---------------------------------------------------------
def test_unknown_prompt_characters_are_named_with_positions(cycle):
    with pytest.raises(seqgen.GenerationError, match=r"prompt 2 \('axbz'\): 2 token\(s\) not "
                                                     r"in the vocabulary: 'x' at 1, 'z' at 3"):
        cycle.generate(["a", "axbz"], "greedy")


def test_unknown_prompt_characters_can_be_skipped(cycle):
    skipped = cycle.generate("cxxa", "greedy", max_new_tokens=3, on_unknown="skip")[0]
    assert skipped.text == cycle.generate("ca", "greedy", max_new_tokens=3)[0].text == "bca"


def test_unknown_prompt_characters_can_map_to_unk():
    vocab = seqgen.Vocab(list("ab"), specials=["<unk>"])
    table = {"a": {"b": 1.0}, "b": {"a": 1.0}, "<unk>": {"<unk>": 0.6, "a": 0.4}}
    model = loaded(bigram(table, vocab), vocab)
    # after "?" (unknown, so <unk>) the model's favourite is <unk>, shown as such
    s = model.generate("b?", "greedy", max_new_tokens=1, on_unknown="unk")[0]
    assert s.text == "<unk>" and s.logprobs == pytest.approx([math.log(0.6)], abs=1e-5)
    assert model.generate("b?", "greedy", max_new_tokens=1, on_unknown="skip")[0].text == "a"
    with pytest.raises(seqgen.GenerationError, match="'\\?' at 1"):
        model.generate("b?", "greedy")


def test_empty_prompt_starts_from_the_start_token(lstm):
    assert lstm.generate("", "greedy", max_new_tokens=10)[0].text == \
        lstm.generate("\n", "greedy", max_new_tokens=10)[0].text


# -- reproducibility and threads ------------------------------------------------------------
def test_same_seed_same_text(lstm):
    spec = {"type": "top-k", "k": 8, "temperature": 1.5}
    a = lstm.generate(["th", "a"], spec, max_new_tokens=40, num_samples=2, seed=5)
    b = lstm.generate(["th", "a"], spec, max_new_tokens=40, num_samples=2, seed=5)
    c = lstm.generate(["th", "a"], spec, max_new_tokens=40, num_samples=2, seed=6)
    assert a == b and [s.text for s in a] != [s.text for s in c]


def test_eight_threads_get_what_sequential_calls_get(lstm):
    spec = {"type": "temperature", "temperature": 1.2}
    want = [lstm.generate(["the ", "a"], spec, max_new_tokens=60, seed=i) for i in range(8)]
    got, start = [None] * 8, threading.Barrier(8)

    def work(i):
        start.wait()                          # all eight generate at the same time
        got[i] = lstm.generate(["the ", "a"], spec, max_new_tokens=60, seed=i)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want
    assert len({s[0].text for s in want}) == 8


# -- streaming -----------------------------------------------------------------------------
@pytest.mark.parametrize("stop", [(), ("e",), ("th", "a ")])
def test_stream_joins_to_the_generated_text(lstm, stop):
    spec = {"type": "random"}
    pieces = list(lstm.stream("the ", spec, max_new_tokens=80, seed=3, stop=stop))
    text = lstm.generate("the ", spec, max_new_tokens=80, seed=3, stop=stop)[0].text
    assert "".join(pieces) == text
    assert len(pieces) > 1 or len(text) <= 1


def test_a_stream_computes_no_log_probabilities(lstm, monkeypatch):
    """A stream shows text only: the per-token log p that generate reports is skipped."""
    want = lstm.generate("the ", "greedy", max_new_tokens=20)[0].text

    def refuse(*args, **kwargs):
        raise AssertionError("log_softmax called while streaming")
    monkeypatch.setattr(torch, "log_softmax", refuse)
    assert "".join(lstm.stream("the ", "greedy", max_new_tokens=20)) == want
    with pytest.raises(AssertionError, match="while streaming"):
        lstm.generate("the ", "greedy", max_new_tokens=20)


def test_stream_yields_before_generation_ends(lstm):
    calls = spy_calls(lstm.model)
    try:
        pieces = lstm.stream("the ", "greedy", max_new_tokens=100)
        assert calls == []                            # nothing runs until asked
        next(pieces)
        assert len(calls) <= 2                         # the prompt, and at most one step
    finally:
        del lstm.model.forward, lstm.model.stepper


def test_stream_holds_back_what_may_begin_a_stop(cycle):
    # "bcabcd..." with stop "abd": "ab" is held until "c" shows it is no stop
    assert list(cycle.stream("a", "greedy", max_new_tokens=6, stop=["abd"])) == \
        ["b", "c", "abc", "a"]


def test_stream_errors_come_at_once(cycle):
    with pytest.raises(seqgen.GenerationError, match="not in the vocabulary"):
        cycle.stream("xyz", "greedy")


# -- warnings ------------------------------------------------------------------------------
def test_knobs_without_effect_warn_from_python(cycle):
    with pytest.warns(seqgen.GenerationWarning,
                      match="^temperature 0 is greedy decoding: k has no effect$"):
        cycle.generate("a", {"type": "top-k", "k": 3, "temperature": 0}, max_new_tokens=2)


def test_identical_samples_from_a_deterministic_strategy_warn(cycle):
    with pytest.warns(seqgen.GenerationWarning, match="greedy is deterministic: the 3 samples "
                                                      "of each prompt are identical"):
        samples = cycle.generate("a", "greedy", max_new_tokens=2, num_samples=3)
    assert len({s.text for s in samples}) == 1


def test_no_warning_when_every_knob_matters(cycle):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cycle.generate("a", {"type": "top-k", "k": 3}, max_new_tokens=2, num_samples=2)
        list(cycle.stream("a", "greedy", max_new_tokens=2))


def test_warnings_point_at_the_callers_line(cycle):
    with pytest.warns(seqgen.GenerationWarning) as record:
        cycle.stream("a", {"type": "temperature", "top_p": 1.0})
    assert record[0].filename == __file__


# -- repetition penalty through generation --------------------------------------------------
def test_repetition_penalty_steers_greedy_away_from_seen_tokens():
    vocab = seqgen.Vocab(list("abc"))
    table = {"a": {"a": 0.6, "b": 0.4}, "b": {"b": 0.9, "c": 0.1}, "c": {"a": 1.0}}
    model = loaded(bigram(table, vocab), vocab)
    assert model.generate("a", "greedy", max_new_tokens=3)[0].text == "aaa"
    # "a" is in the prompt: log 0.6 * 2 < log 0.4, so "b"; then "b" (seen) still beats "c"
    penalized = model.generate("a", {"type": "greedy", "repetition_penalty": 2.0},
                               max_new_tokens=3)[0]
    assert penalized.text == "bbb"
    # log-probs stay the model's own, unpenalized
    assert penalized.logprobs == pytest.approx([math.log(0.4)] + [math.log(0.9)] * 2, abs=1e-5)
