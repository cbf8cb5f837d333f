"""The text, lines and pairs datasets take the corpus itself (`"text": "..."`) as well as
a file: the same characters give the same vocabulary and tokens, the filesystem is never
touched, and a spec gives exactly one source (both or neither is refused at its path)."""
from __future__ import annotations

import builtins
import contextlib
import glob
import json
import os

import pytest
import torch

from seqgen import DataError, SpecError
from seqgen_plugins.datasets.lines import build_lines_dataset
from seqgen_plugins.datasets.pairs import build_pairs_dataset
from seqgen_plugins.datasets.text import build_text_dataset

CORPUS = "the cat sees a dog.\nA red bird sings; the old cat sleeps.\n" * 6
NAMES = "anna\nbob\n\ncarla\n  \ndmitri\neve\nfatima\ngus\n"
PAIRS_TSV = "hello\tohlol\nabc\tcba\n\nkitten\tnettik\n"
PAIRS_JSONL = "".join(json.dumps({"input": x, "target": y}) + "\n"
                      for x, y in (("hello", "ohlol"), ("abc", "cba")))

# (builder, file name, text, options): each dataset at a level and setting of its own
CASES = {
    "text-char": (build_text_dataset, "corpus.txt", CORPUS, {"valid_fraction": 0.2}),
    "text-word": (build_text_dataset, "corpus.txt", CORPUS,
                  {"level": "word", "lowercase": True, "max_chars": 200}),
    "text-d2l": (build_text_dataset, "corpus.txt", CORPUS, {"clean": "d2l"}),
    "lines-char": (build_lines_dataset, "names.txt", NAMES, {"valid_fraction": 0.25}),
    "lines-word": (build_lines_dataset, "names.txt", NAMES,
                   {"level": "word", "valid_fraction": 0}),
    "pairs-tsv": (build_pairs_dataset, "pairs.tsv", PAIRS_TSV, {}),
    "pairs-jsonl": (build_pairs_dataset, "pairs.jsonl", PAIRS_JSONL, {"format": "jsonl"}),
}


def ids(split) -> list[list[int]]:
    if split is None:
        return []
    if split.kind == "stream":
        return [split.ids.tolist()]
    return [t.tolist() for t in split.inputs] + [t.tolist() for t in split.targets]


def assert_same_data(a, b) -> None:
    assert a.vocab == b.vocab and a.vocab.tokens == b.vocab.tokens
    assert a.task == b.task
    assert ids(a.train) == ids(b.train) and ids(a.valid) == ids(b.valid)


@contextlib.contextmanager
def no_filesystem():
    """Any attempt to look at or open a file, inside the block, fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"touched the filesystem: {args!r}")
    with pytest.MonkeyPatch.context() as m:
        for module, name in ((os, "open"), (os, "stat"), (os, "lstat"), (os.path, "lexists"),
                             (os.path, "isfile"), (builtins, "open"), (glob, "glob")):
            m.setattr(module, name, refuse)
        yield


@pytest.mark.parametrize("case", sorted(CASES))
def test_text_gives_what_a_file_of_that_text_gives(case, tmp_path):
    build, name, text, options = CASES[case]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    from_file = build(path=str(path), **options)
    with no_filesystem():
        from_text = build(text=text, **options)
    assert_same_data(from_text, from_file)
    assert from_text.source == f"<text: {len(text)} characters>"
    if "files" in from_text.info:
        assert from_text.info["files"] == 0


def test_text_never_touches_the_filesystem():
    with no_filesystem():
        data = build_text_dataset(text=CORPUS)
        lines = build_lines_dataset(text=NAMES, valid_fraction=0)
        pairs = build_pairs_dataset(text=PAIRS_TSV)
    assert data.source == f"<text: {len(CORPUS)} characters>"
    assert lines.info["lines"] == 7 and len(pairs.train) == 3


def test_text_is_read_as_a_file_would_be(tmp_path):
    """A byte-order mark and CRLF line ends are normalised, as for a file."""
    raw = "\ufeffanna\r\nbob\r\n"
    path = tmp_path / "crlf.txt"
    path.write_bytes(raw.encode("utf-8"))
    from_text = build_lines_dataset(text=raw, valid_fraction=0)
    assert_same_data(from_text, build_lines_dataset(path=str(path), valid_fraction=0))
    assert from_text.vocab.tokens[3:] == ["a", "b", "n", "o"]


def test_text_errors_name_the_text():
    with pytest.raises(DataError, match=r"^<text: 6 characters> line 2: input 'abc' has 3"):
        build_pairs_dataset(text="\nabc\tx")
    with pytest.raises(DataError, match=r"^<text: 1 character> line 1: expected input<TAB>"):
        build_pairs_dataset(text="x")
    with pytest.raises(DataError, match=r"^<text: 3 characters>: no non-empty lines"):
        build_lines_dataset(text=" \n ")
    with pytest.raises(DataError, match=r"^<text: 0 characters>: empty corpus"):
        build_text_dataset(text="")
    with pytest.raises(DataError, match="is not a Unicode character"):
        build_text_dataset(text="ab\udcff")


@pytest.mark.parametrize("build, other", [(build_text_dataset, {"path": "a.txt"}),
                                          (build_text_dataset, {"paths": ["a.txt"]}),
                                          (build_lines_dataset, {"path": "a.txt"}),
                                          (build_pairs_dataset, {"path": "a.tsv"}),
                                          (build_pairs_dataset, {"pairs": [["a", "b"]]})])
def test_builders_take_exactly_one_source(build, other):
    with pytest.raises(DataError, match=r"exactly one of .*'text'.*; got .* and text$"):
        build(text="ab\tba\n", **other)
    with pytest.raises(DataError, match=r"exactly one of .*'text' \(.*\)$"):
        build()


# -- the spec ---------------------------------------------------------------------------------
def spec_with(dataset: dict) -> dict:
    sampler = "sequential" if dataset["type"] == "text" else "bucket"
    return {"dataset": dataset, "model": {"cell": {"type": "gru", "hidden_size": 4}},
            "sampler": {"type": sampler, "batch_size": 2}, "train": {"max_steps": 2}}


def problems_of(session, dataset: dict) -> list[str]:
    with pytest.raises(SpecError) as caught:
        session.resolve(spec_with(dataset))
    return caught.value.problems


@pytest.mark.parametrize("kind, other, shown", [
    ("text", {"path": "corpus.txt"}, "$.dataset.path: 'corpus.txt'"),
    ("text", {"paths": ["a.txt"]}, "$.dataset.paths: ['a.txt']"),
    ("lines", {"path": "names.txt"}, "$.dataset.path: 'names.txt'"),
    ("pairs", {"path": "p.tsv"}, "$.dataset.path: 'p.tsv'"),
    ("pairs", {"pairs": [["ab", "ba"]]}, "$.dataset.pairs: [['ab', 'ba']]"),
])
def test_spec_with_text_and_a_file_is_refused_at_the_path(session, kind, other, shown):
    text = "a long corpus that the message does not repeat " * 50
    problems = problems_of(session, {"type": kind, "text": text, **other})
    assert len(problems) == 1
    assert problems[0].startswith(f"{shown} is not allowed: $.dataset.text is given too; "
                                  f"give exactly one of ")
    assert "'text' (" in problems[0] and text not in problems[0]


@pytest.mark.parametrize("kind, first", [("text", "path"), ("lines", "path"),
                                         ("pairs", "pairs")])
def test_spec_without_a_source_is_refused(session, kind, first):
    [problem] = problems_of(session, {"type": kind})
    # seqgen.spec reports the requirement's description where it knows to, else
    # jsonschema's own words
    if problem != f"$.dataset: '{first}' is a required property":
        assert problem.startswith("$.dataset: the corpus is missing: give ")
        assert f"$.dataset.{first} (" in problem and "$.dataset.text (" in problem


def test_spec_with_an_empty_text_is_refused(session):
    assert problems_of(session, {"type": "text", "text": ""}) == [
        "$.dataset.text: '' should be non-empty"]


def test_format_is_not_for_inline_pairs(session):
    problems = problems_of(session, {"type": "pairs", "pairs": [["ab", "ba"]],
                                     "format": "jsonl"})
    assert problems == ["$.dataset.format: 'jsonl' is not allowed: $.dataset.pairs are given "
                        "inline; 'format' is for 'path' or 'text' (leave it null)"]


@pytest.mark.parametrize("kind", ["text", "lines", "pairs"])
def test_spec_with_text_resolves_and_saves_it(session, kind):
    text = {"text": CORPUS, "lines": NAMES, "pairs": PAIRS_TSV}[kind]
    resolved = session.resolve(spec_with({"type": kind, "text": text}))
    assert resolved["dataset"]["text"] == text and "path" not in resolved["dataset"]


def test_run_from_text_end_to_end(session, tmp_path, no_filesystem_for_data):
    torch.manual_seed(0)
    spec = {"name": "inmemory", "seed": 0,
            "dataset": {"type": "text", "text": CORPUS, "valid_fraction": 0.1},
            "model": {"embedding": {"type": "learned", "size": 4},
                      "cell": {"type": "gru", "hidden_size": 8}},
            "sampler": {"type": "sequential", "batch_size": 2, "num_steps": 8},
            "train": {"max_steps": 2, "log_every": 1},
            "generate": {"prompts": ["the "], "max_new_tokens": 4}}
    events = []
    result = session.run(spec, out=tmp_path / "run", emit=events.append)
    assert result.train.step == 2
    assert [e.data["dataset"] for e in events if e.kind == "start"] == [
        f"<text: {len(CORPUS)} characters>"]
    saved = json.loads((tmp_path / "run" / "spec.json").read_text(encoding="utf-8"))
    assert saved["dataset"]["text"] == CORPUS
    assert result.samples


@pytest.fixture
def no_filesystem_for_data(monkeypatch):
    """The dataset module's own file access fails the test (the run writes its directory)."""
    import seqgen_plugins.datasets.files as files
    monkeypatch.setattr(files, "resolve", lambda *a: pytest.fail("resolved a path"))
    monkeypatch.setattr(files, "read_text", lambda *a: pytest.fail("read a file"))
