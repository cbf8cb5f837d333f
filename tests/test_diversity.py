"""distinct-n: how varied generated text is, per sample and pooled over samples."""
import pytest

import seqgen
from seqgen.diversity import distinct_n, diversity


def test_distinct_n_counts_distinct_ngrams_over_all_ngrams():
    assert distinct_n(list("abab"), 1) == 0.5
    assert distinct_n(list("abab"), 2) == round(2 / 3, 4)
    assert distinct_n(list("abcd"), 2) == 1.0
    assert distinct_n(["the"] * 5, 1) == 0.2
    assert distinct_n(["x"], 2) is None


def test_pooled_diversity_sees_samples_that_repeat_each_other():
    same = diversity([list("abc"), list("abc")])
    apart = diversity([list("abc"), list("xyz")])
    assert same == {"distinct_1": 0.5, "distinct_2": 0.5}
    assert apart == {"distinct_1": 1.0, "distinct_2": 1.0}


def test_samples_carry_their_diversity(tmp_path):
    from conftest import TINY_SPEC
    result = seqgen.Session(entry_points=False).run(
        {**TINY_SPEC, "train": {"epochs": 1, "max_steps": 2}}, out=tmp_path / "r")
    model = result.model
    s = model.generate("the ", "random", max_new_tokens=30, seed=3)[0]
    tokens = model.vocab.split(s.text)
    assert s.distinct_1 == distinct_n(tokens, 1) and s.distinct_2 == distinct_n(tokens, 2)
    assert 0 < s.distinct_1 <= 1 and s.to_dict()["distinct_2"] == s.distinct_2
    assert all(x.distinct_1 is not None for x in result.samples)
    import json
    saved = json.loads((tmp_path / "r" / "samples.json").read_text())
    assert saved[0]["distinct_1"] == pytest.approx(result.samples[0].distinct_1)
