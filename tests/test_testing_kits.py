"""seqgen.testing.check_strategy and check_dataset: every built-in passes, and each kit
catches deliberately broken components, naming the property that broke."""
from __future__ import annotations

import random
import re
import types
from pathlib import Path

import pytest
import torch

import seqgen
from seqgen import Dataset, Hypothesis, SequenceSet, Strategy, TokenStream, Vocab
from seqgen.testing import check_cell, check_dataset, check_sampler, check_strategy

SESSION = seqgen.Session(entry_points=False)
STRATEGIES = SESSION.registry.names("strategy")
DATASETS = SESSION.registry.names("dataset")

# Options beyond the defaults that reach other code paths of the built-ins.
STRATEGY_VARIANTS = {
    "teacher-forcing": [{"reference": "abcab"}, {"ratio": 0.5, "free": "sample"}],
    "beam": [{"width": 1}, {"width": 3, "length_penalty": 0.0}],
    "top-k": [{"k": 3, "repetition_penalty": 1.3}],
    "temperature": [{"temperature": 0.0}],
}
CORPUS = "First line of the text.\nThe Second line, with more words!\n\nthird: the end\n"
# Options the built-in datasets need (text and lines read a file the test writes).
DATASET_OPTIONS = {
    "synthetic": [{"num_chars": 2000}],
    "text": [{"path": "corpus.txt"},
             {"path": "corpus.txt", "level": "word", "valid_fraction": 0.2},
             {"path": "corpus.txt", "level": "word", "pattern": "[a-z]+", "lowercase": True,
              "min_freq": 2}],
    "lines": [{"path": "corpus.txt", "valid_fraction": 0.34},
              {"path": "corpus.txt", "level": "word", "valid_fraction": 0}],
    "pairs": [{"pairs": [["hello", "ohlol"], ["abc", "cab"]]},
              {"pairs": [["hello", "ohlol"], ["abc", "cab"]], "valid_fraction": 0.5}],
    "translation": [{"text": "Go.\tVa !\nHi.\tSalut !\nRun!\tCours !\n", "min_freq": 1,
                     "valid_fraction": 0.34},
                    {"pairs": [["go .", "va !"], ["hi .", "salut !"]], "shared_vocab": True,
                     "level": "char", "valid_fraction": 0}],
    "reversal": [{"size": 20}, {"size": 10, "transform": "sort", "valid_fraction": 0}],
}


def built_in_strategy(name: str):
    """A factory that validates options and builds component slots, as a spec does."""
    def factory(**options):
        return SESSION.strategy({"type": name, **options})
    factory.__name__ = name
    return factory


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_built_in_strategy_passes(name):
    for options in [{}, *STRATEGY_VARIANTS.get(name, [])]:
        check_strategy(built_in_strategy(name), options=options)


@pytest.mark.parametrize("name", DATASETS)
def test_every_built_in_dataset_passes(name, tmp_path):
    (tmp_path / "corpus.txt").write_text(CORPUS)
    component = SESSION.component("dataset", name)
    for options in DATASET_OPTIONS.get(name, [{}]):
        dataset = check_dataset(component.factory, options=options,
                                task=component.extra.get("task"))
        assert isinstance(dataset, Dataset)


def test_the_kits_leave_the_global_rng_alone():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    check_strategy(built_in_strategy("random"))
    assert torch.equal(torch.get_rng_state(), before)


# -- strategies -------------------------------------------------------------------------------
class Argmax(Strategy):
    """A correct deterministic strategy; subclasses below each break one rule."""

    def choose(self, logits, generator=None):
        return logits.argmax(dim=-1)


class Draw(Strategy):
    """A correct stochastic strategy."""

    stochastic = True

    def choose(self, logits, generator=None):
        probs = torch.softmax(logits.float(), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class GreedySearch(Argmax):
    """A correct search: follow the argmax until <eos>, num_samples copies."""

    def search(self, d):
        found = []
        for row in range(d.logits.shape[0]):
            logits = d.logits[row:row + 1]
            state = seqgen.select_batch(d.state, torch.tensor([row]))
            tokens, logprobs = [], []
            for _ in range(d.max_new_tokens):
                logp = logits.float().log_softmax(-1)[0]
                token = int(logp.argmax())
                tokens.append(token)
                logprobs.append(float(logp[token]))
                if token == d.vocab.eos_id:
                    break
                logits, state = d.step(torch.tensor([token]), state)
            found.append([Hypothesis(tokens, logprobs, sum(logprobs))] * d.num_samples)
        return found


@pytest.mark.parametrize("good", [Argmax, Draw, GreedySearch])
def test_correct_custom_strategies_pass(good):
    check_strategy(good)


class Int32(Argmax):
    def choose(self, logits, generator=None):
        return logits.argmax(dim=-1).int()


class Elsewhere(Argmax):
    def choose(self, logits, generator=None):
        return logits.argmax(dim=-1).to("meta")


class InPlace(Argmax):
    def choose(self, logits, generator=None):
        return logits.div_(2.0).argmax(dim=-1)


class PicksMasked(Argmax):
    def choose(self, logits, generator=None):
        return logits.argmin(dim=-1)


class GlobalRng(Draw):
    def choose(self, logits, generator=None):
        return torch.multinomial(torch.softmax(logits.float(), -1), 1).squeeze(-1)


class FakeStochastic(Argmax):
    stochastic = True


class SecretlyRandom(Draw):
    stochastic = False


class RatioTooHigh(Argmax):
    def teacher_ratio(self, epoch):
        return 1.0 + epoch


class NoDescription(Argmax):
    def describe(self):
        return None


class WarningsAsText(Argmax):
    def warnings(self):
        return "no effect"


class ZeroLogprobs(GreedySearch):
    def search(self, d):
        return [[Hypothesis(h.tokens, [0.0] * len(h.tokens), 0.0) for h in hs]
                for hs in super().search(d)]


class TooFewHypotheses(GreedySearch):
    def search(self, d):
        return [hs[:1] for hs in super().search(d)]


def not_a_strategy():
    return object()


@pytest.mark.parametrize("broken, prop, message", [
    (not_a_strategy, "type", "not a seqgen.Strategy"),
    (Int32, "choose", "torch.int32 ids; they must be torch.int64"),
    (Elsewhere, "choose", "on meta for logits on cpu"),
    (InPlace, "input", "choose changed the logits it was given"),
    (PicksMasked, "masked", "whose logit is -inf"),
    (GlobalRng, "generator", "never from the global RNG"),
    (FakeStochastic, "generator", "stochastic is True but 16 generator seeds give the same"),
    (SecretlyRandom, "determinism", "stochastic is False, but generator seed"),
    (RatioTooHigh, "teacher_ratio", "teacher_ratio(1) is 2.0, outside [0, 1]"),
    (NoDescription, "describe", "describe() returned None"),
    (WarningsAsText, "warnings", "not a list of str"),
    (ZeroLogprobs, "search", "has log-probability"),
    (TooFewHypotheses, "search", "expected a list of 2 Hypothesis objects"),
])
def test_broken_strategies_are_caught(broken, prop, message):
    with pytest.raises(AssertionError) as caught:
        check_strategy(broken)
    text = str(caught.value)
    assert text.startswith(f"strategy contract {prop!r} failed for {broken.__name__}(**{{}}): ")
    assert message in text


def test_a_search_may_refuse_options_it_cannot_serve():
    class NeedsReference(GreedySearch):
        def search(self, d):
            raise seqgen.GenerationError("give a reference")
    check_strategy(NeedsReference)


# -- datasets ---------------------------------------------------------------------------------
TEXT = "hello world. the world says hello.\n" * 4


def good_dataset(**options):
    """A correct char-level lm dataset; the broken ones below each break one rule."""
    vocab = Vocab.from_text(TEXT)
    ids = vocab.encode(TEXT)
    return Dataset(vocab, "lm", TokenStream(ids[:100]), TokenStream(ids[100:]), source="TEXT",
                   info={"tokens": len(ids)})


def returns_a_dict():
    return {"vocab": Vocab.from_text(TEXT)}


def unknown_task():
    d = good_dataset()
    d.task = "classify"
    return d


def stream_for_lines():
    d = good_dataset()
    d.task = "lines"
    return d


def empty_train():
    d = good_dataset()
    d.train = TokenStream(d.train.ids[:0])
    return d


def float_ids():
    d = good_dataset()
    d.train = TokenStream(d.train.ids.float())
    return d


def ids_past_the_vocabulary():
    d = good_dataset()
    d.train = TokenStream(d.train.ids.long() + 1)
    return d


def global_rng():
    """Shuffles its text with the global RNG: another build, other ids."""
    words = TEXT.split()
    random.shuffle(words)
    text = " ".join(words)
    vocab = Vocab.from_text(text)
    return Dataset(vocab, "lm", TokenStream(vocab.encode(text)))


def lines_not_shifted():
    vocab = Vocab.from_text("abc", specials=(seqgen.BOS, seqgen.EOS))
    x = vocab.encode("abc")
    return Dataset(vocab, "lines", SequenceSet([x], [x]))


def unencodable_vocabulary():
    """Lowercases prompts but holds upper-case tokens: its own text does not encode."""
    text = "Hello World"
    vocab = Vocab.from_text(text, lowercase=True)
    return Dataset(vocab, "lm", TokenStream(torch.tensor([vocab.id(c) for c in text])))


def info_with_a_tensor():
    d = good_dataset()
    d.info["ids"] = d.train.ids
    return d


def _pair_vocab():
    return Vocab.from_text("abc", specials=(seqgen.PAD, seqgen.BOS, seqgen.EOS))


def pairs_without_eos():
    vocab = _pair_vocab()
    x = vocab.encode("abc")
    return Dataset(vocab, "seq2seq", seqgen.PairSet([x], [x.flip(0)], vocab.bos_id))


def sources_past_their_vocabulary():
    vocab, source_vocab = _pair_vocab(), Vocab.from_text("xy")
    target = torch.cat([vocab.encode("cba"), torch.tensor([vocab.eos_id])])
    return Dataset(vocab, "seq2seq", seqgen.PairSet([vocab.encode("abc")], [target], vocab.bos_id),
                   source_vocab=source_vocab)


@pytest.mark.parametrize("broken, prop, message", [
    (pairs_without_eos, "seq2seq", "does not end in <eos>"),
    (sources_past_their_vocabulary, "ids", "train pair 0 source: ids run from 3 to 5, outside 0..1"),
    (returns_a_dict, "type", "returned dict, not a seqgen.Dataset"),
    (info_with_a_tensor, "type", "info is not JSON-able"),
    (unknown_task, "task", "task is 'classify'; must be one of lm, lines, aligned, seq2seq"),
    (stream_for_lines, "splits", "train is a TokenStream; task 'lines' gives a SequenceSet"),
    (empty_train, "splits", "train split is empty"),
    (float_ids, "ids", "ids are torch.float32; use an integer dtype"),
    (ids_past_the_vocabulary, "ids", "ids run from 1 to 14, outside 0..13"),
    (global_rng, "deterministic", "never from the global RNG"),
    (lines_not_shifted, "lines", "targets [2, 3, 4] are not inputs [2, 3, 4] shifted by one"),
    (unencodable_vocabulary, "round-trip", "the vocabulary must encode its own text"),
])
def test_broken_datasets_are_caught(broken, prop, message):
    with pytest.raises(AssertionError) as caught:
        check_dataset(broken)
    text = str(caught.value)
    assert text.startswith(f"dataset contract {prop!r} failed for {broken.__name__}(**{{}}): ")
    assert message in text


def test_the_registered_task_must_match():
    with pytest.raises(AssertionError, match=re.escape(
            "dataset contract 'task' failed for good_dataset(**{}): the dataset was "
            "registered with task='lines' but built one with task 'lm'")):
        check_dataset(good_dataset, task="lines")


def test_options_reach_the_factory_and_the_dataset_comes_back():
    seen = []

    def factory(**options):
        seen.append(options)
        return good_dataset()

    dataset = check_dataset(factory, options={"size": 3}, task="lm")
    assert seen == [{"size": 3}, {"size": 3}] and dataset.task == "lm"


# -- the README's examples ----------------------------------------------------------------------
def readme_examples() -> list[dict]:
    """Run each python block of README.md's "Writing a plugin" section; their namespaces."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Writing a plugin"):]
    section = section[:section.index("\n## ", 1)]
    spaces = []
    for block in re.findall(r"```python\n(.*?)```", section, re.S):
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)
        spaces.append(namespace)
    return spaces


def test_the_readme_plugin_examples_register_and_pass_their_kits():
    cell, dataset, sampler, strategy = readme_examples()
    check_cell(cell["Elman"], input_size=5, options={"hidden_size": 8})
    check_dataset(dataset["build_poem"], options={}, task="lm")
    check_sampler(sampler["Windows"], TokenStream(torch.arange(500)),
                  options={"batch_size": 4, "num_steps": 5})
    check_strategy(strategy["Tempered"], options={"temperature": 0.7})
    plugins = [types.SimpleNamespace(**{k: v for k, v in ns.items() if k.startswith("register_")})
               for ns in (cell, dataset, sampler, strategy)]
    session = seqgen.Session(plugins=plugins, entry_points=False)
    assert session.load_failures == []
    for kind, name in (("cell", "elman"), ("dataset", "poem"), ("sampler", "windows"),
                       ("strategy", "tempered")):
        assert session.component(kind, name).name == name
