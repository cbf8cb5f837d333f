"""The shipped examples do what their READMEs say."""
from pathlib import Path

import seqgen

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_hello_maps_to_ohlol_perfectly(session):
    events = []
    result = session.run(EXAMPLES / "hello.json", out="hello", emit=events.append)
    shown = [e.data["text"] for e in events if e.kind == "sample"]
    assert shown[-1] == "ohlol"                       # the prediction is shown as it trains
    assert [s.text for s in result.samples] == ["ohlol"]
    final = [h for h in result.train.history if h["event"] == "eval"][-1]
    assert final["valid_loss"] < 0.05


def test_quickstart_learns_words_in_a_few_epochs(session):
    result = session.run(EXAMPLES / "quickstart.json", ["train.epochs=3", "train.sample_every=null",
                                                       "dataset.num_chars=20000"], out="qs")
    evals = [h["valid_perplexity"] for h in result.train.history if h["event"] == "eval"]
    assert evals[-1] < 2.0 and evals[-1] < evals[0]
    words = set(seqgen.load("qs", entry_points=False).generate(
        "the ", "greedy", max_new_tokens=60)[0].text.replace(".", " ").split())
    grammar = {"the", "a", "an", "old", "red", "small", "happy", "quiet", "cat", "dog", "bird",
               "tree", "house", "river", "sees", "likes", "finds", "follows"}
    assert words and words <= grammar
