"""Contract checks for dataset plugins: the rules of `seqgen.Dataset`.

    from seqgen.testing import check_dataset

    def test_my_dataset_keeps_the_contract(tmp_path):
        (tmp_path / "c.txt").write_text("some text\\n")
        check_dataset(build_my_dataset, options={"path": str(tmp_path / "c.txt")}, task="lm")

Give options that build quickly (a small corpus): the factory is called twice. A broken
property raises AssertionError whose message starts with its name, e.g.
"dataset contract 'ids' failed for build_my_dataset(**{...}): ...".
"""
from __future__ import annotations

import json
from typing import Callable

import torch

from ..data import TASKS, Dataset, PairSet, SequenceSet, TokenStream
from ..errors import SeqgenError
from ..vocab import BOS, EOS, Vocab
from .contract import contract_property

Factory = Callable[..., Dataset]
# The split shape each task gives (the spec validator matches samplers by it).
SHAPE = {"lm": TokenStream, "lines": SequenceSet, "aligned": SequenceSet, "seq2seq": PairSet}
ROUND_TRIP_TOKENS = 2000  # ids of each split decoded and encoded again


def check_dataset(factory: Factory, *, options: dict | None = None,
                  task: str | None = None) -> Dataset:
    """Build `factory(**options)` twice and check every contract property; returns the
    dataset for checks of your own.

    task: the task registered with the dataset (`register(..., task=...)`); the built
          dataset must have it. None checks only that its task is a known one.

    Properties:
      "type":          a seqgen.Dataset with a seqgen.Vocab of at least one token, a str
                       `source` and a JSON-able dict `info`
      "task":          `task` is one of seqgen's tasks ("lm", "lines", "aligned") and the
                       registered one
      "splits":        train is non-empty, of the task's shape (a TokenStream for "lm",
                       a SequenceSet otherwise); valid is None or a non-empty split of the
                       same shape
      "ids":           every id is of an integer dtype and in 0..len(vocab)-1; a stream
                       is 1-D; each sequence's inputs and targets are 1-D, non-empty and
                       of equal length
      "vocabulary":    tokens are distinct strings in canonical order (specials first,
                       then sorted: what `Vocab` builds), survive a JSON round trip, and
                       at char level every ordinary token is one character
      "deterministic": a second build gives the same vocabulary, task and ids
      "lines":         task "lines" only: the vocabulary has <bos> and <eos>, and each
                       sequence's targets are its inputs shifted by one token
      "seq2seq":       task "seq2seq" only: a PairSet of as many sources as targets,
                       sources in 0..len(source_vocab)-1, every target ending in <eos>,
                       the split's bos_id the vocabulary's <bos>, and a source vocabulary
                       (when it has its own) of the same canonical form
      "round-trip":    tasks "lm" and "lines" (whose prompts the vocabulary encodes for
                       generation): decoding a run of ordinary (non-special) ids and
                       encoding the text gives the same ids, for the first 2000 ids of
                       each split
    """
    options = dict(options or {})
    label = f"{getattr(factory, '__name__', type(factory).__name__)}(**{options})"
    with _property("type", label):
        dataset = factory(**options)
        _check_type(dataset)
    with _property("task", label):
        assert dataset.task in TASKS, (
            f"task is {dataset.task!r}; must be one of {', '.join(TASKS)}")
        assert task is None or dataset.task == task, (
            f"the dataset was registered with task={task!r} but built one with task "
            f"{dataset.task!r}")
    with _property("splits", label):
        _check_splits(dataset)
    with _property("ids", label):
        for name, split in _splits(dataset):
            _check_ids(split, len(dataset.vocab), name, len(dataset.input_vocab))
    with _property("vocabulary", label):
        _check_vocab(dataset.vocab)
        if dataset.source_vocab is not None:
            _check_vocab(dataset.source_vocab)
    with _property("deterministic", label):
        _check_same(dataset, factory(**options))
    if dataset.task == "lines":
        with _property("lines", label):
            _check_lines(dataset)
    if dataset.task == "seq2seq":
        with _property("seq2seq", label):
            _check_pairs(dataset)
    if dataset.task in ("lm", "lines"):
        with _property("round-trip", label):
            for name, split in _splits(dataset):
                _check_round_trip(dataset.vocab, split, name)
    return dataset


def _property(name: str, label: str):
    return contract_property("dataset", name, label)


def _splits(dataset: Dataset):
    yield "train", dataset.train
    if dataset.valid is not None:
        yield "valid", dataset.valid


def _sequences(split) -> list[torch.Tensor]:
    """Every id tensor of a split: the stream, or each sequence's inputs and targets
    (each pair's source and target)."""
    if isinstance(split, TokenStream):
        return [split.ids]
    if isinstance(split, PairSet):
        return [*split.sources, *split.targets]
    return [*split.inputs, *split.targets]


def _check_type(dataset) -> None:
    assert isinstance(dataset, Dataset), (
        f"factory returned {type(dataset).__name__}, not a seqgen.Dataset")
    assert isinstance(dataset.vocab, Vocab), (
        f"vocab is a {type(dataset.vocab).__name__}, not a seqgen.Vocab")
    assert len(dataset.vocab) >= 1, "the vocabulary is empty"
    assert isinstance(dataset.source, str), f"source is {dataset.source!r}, not a str"
    assert isinstance(dataset.info, dict), f"info is {dataset.info!r}, not a dict"
    try:
        json.dumps(dataset.info)
    except (TypeError, ValueError) as e:
        raise AssertionError(f"info is not JSON-able ({e}): {dataset.info!r}") from e


def _check_splits(dataset: Dataset) -> None:
    shape = SHAPE[dataset.task]
    for name, split in _splits(dataset):
        assert isinstance(split, shape), (
            f"{name} is a {type(split).__name__}; task {dataset.task!r} gives a "
            f"{shape.__name__}")
        assert len(split) > 0, f"{name} split is empty"
    if isinstance(dataset.train, TokenStream):
        assert len(dataset.train) >= 2, (
            f"train stream has {len(dataset.train)} token(s); one input and its target need 2")


def _check_rows(name: str, unit: str, first: tuple[str, list], second: tuple[str, list]) -> None:
    """Two parallel lists of non-empty 1-D id tensors (inputs and targets, sources and
    targets), one row per sequence or pair."""
    (a, xs), (b, ys) = first, second
    assert isinstance(xs, list) and isinstance(ys, list), (
        f"{name}: {a} and {b} must be lists of tensors")
    assert len(xs) == len(ys), f"{name}: {len(xs)} {a} but {len(ys)} {b}"
    for i, row in enumerate(zip(xs, ys)):
        for what, t in zip((a, b), row):
            assert isinstance(t, torch.Tensor) and t.dim() == 1 and t.numel() > 0, (
                f"{name} {unit} {i}: {what} must be a non-empty 1-D tensor, got "
                f"{type(t).__name__} of shape {tuple(getattr(t, 'shape', ()))}")


def _check_ids(split, vocab_size: int, name: str, source_size: int) -> None:
    if isinstance(split, PairSet):
        _check_rows(name, "pair", ("sources", split.sources), ("targets", split.targets))
        for i, (x, y) in enumerate(zip(split.sources, split.targets)):
            _check_range(x, source_size, f"{name} pair {i} source")
            _check_range(y, vocab_size, f"{name} pair {i} target")
        return
    if isinstance(split, SequenceSet):
        _check_rows(name, "sequence", ("inputs", split.inputs), ("targets", split.targets))
        for i, (x, y) in enumerate(zip(split.inputs, split.targets)):
            assert x.shape == y.shape, (
                f"{name} sequence {i}: inputs {tuple(x.shape)} and targets "
                f"{tuple(y.shape)} differ in length")
    else:
        assert isinstance(split.ids, torch.Tensor) and split.ids.dim() == 1, (
            f"{name}: stream ids must be a 1-D tensor, got "
            f"{type(split.ids).__name__} of shape {tuple(getattr(split.ids, 'shape', ()))}")
    for t in _sequences(split):
        _check_range(t, vocab_size, name)


def _check_range(t: torch.Tensor, vocab_size: int, name: str) -> None:
    assert not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool, (
        f"{name}: ids are {t.dtype}; use an integer dtype (seqgen.smallest_int_dtype)")
    low, high = int(t.min()), int(t.max())
    assert 0 <= low and high < vocab_size, (
        f"{name}: ids run from {low} to {high}, outside 0..{vocab_size - 1} "
        f"(vocabulary of {vocab_size})")


def _check_vocab(vocab: Vocab) -> None:
    tokens = vocab.tokens
    assert all(isinstance(t, str) and t for t in tokens), "tokens must be non-empty strings"
    assert len(set(tokens)) == len(tokens), "the vocabulary has duplicate tokens"
    assert vocab.level in ("char", "word"), f"level is {vocab.level!r}, not 'char' or 'word'"
    again = Vocab.from_dict(json.loads(vocab.to_json()))   # raises if not canonical
    assert again == vocab and again.tokens == tokens, "the vocabulary changes in a JSON round trip"
    assert set(vocab.specials) <= set(tokens), "a special token is missing from the tokens"
    if vocab.level == "char":
        long = [t for t in tokens if t not in vocab.specials and len(t) != 1]
        assert not long, f"char-level vocabulary has multi-character tokens {long[:5]}"


def _check_same(first: Dataset, second: Dataset) -> None:
    assert isinstance(second, Dataset), f"the second build returned {type(second).__name__}"
    diff = first.vocab.difference(second.vocab)
    assert diff is None, (
        f"two builds with the same options give different vocabularies ({diff}); build it "
        "from sorted tokens (seqgen.Vocab), never in set or dict order, and seed any "
        "randomness from the options")
    assert first.task == second.task, f"two builds give tasks {first.task!r} and {second.task!r}"
    a, b = dict(_splits(first)), dict(_splits(second))
    assert a.keys() == b.keys(), "one build has a validation split, the other not"
    for name in a:
        x, y = _sequences(a[name]), _sequences(b[name])
        assert len(x) == len(y) and all(
            p.shape == q.shape and torch.equal(p.long(), q.long()) for p, q in zip(x, y)), (
            f"two builds with the same options give different {name} ids; seed any "
            "randomness from the options, never from the global RNG")


def _check_markers(dataset: Dataset, which: str, what: str) -> None:
    vocab = dataset.vocab
    assert vocab.bos_id is not None and vocab.eos_id is not None, (
        f"task {dataset.task!r} needs {BOS} and {EOS} in the {which} ({what} starts after "
        "<bos> and stops at <eos>)")


def _check_lines(dataset: Dataset) -> None:
    _check_markers(dataset, "vocabulary", "generation")
    for name, split in _splits(dataset):
        for i, (x, y) in enumerate(zip(split.inputs, split.targets)):
            assert torch.equal(x[1:].long(), y[:-1].long()), (
                f"{name} sequence {i}: targets {y.tolist()} are not inputs {x.tolist()} "
                "shifted by one token")


def _check_pairs(dataset: Dataset) -> None:
    _check_markers(dataset, "target vocabulary", "decoding")
    vocab = dataset.vocab
    for name, split in _splits(dataset):
        assert split.bos_id == vocab.bos_id, (
            f"{name}: bos_id is {split.bos_id}, but the vocabulary's <bos> is {vocab.bos_id}")
        for i, y in enumerate(split.targets):
            assert int(y[-1]) == vocab.eos_id, (
                f"{name} pair {i}: the target {y.tolist()[:12]} does not end in <eos> "
                f"({vocab.eos_id})")


def _check_round_trip(vocab: Vocab, split, name: str) -> None:
    pieces, count = [], 0
    for t in _sequences(split):        # runs never span two sequences: specials end them
        pieces.append(t[:ROUND_TRIP_TOKENS - count].long())
        pieces.append(torch.tensor([-1]))
        count += len(pieces[-2])
        if count >= ROUND_TRIP_TOKENS:
            break
    ids = torch.cat(pieces)
    special = torch.tensor([-1] + [vocab.id(s) for s in vocab.specials], dtype=torch.long)
    ordinary = ~torch.isin(ids, special)
    runs, run = [], []
    for i, keep in zip(ids.tolist(), ordinary.tolist()):
        if keep:
            run.append(i)
        elif run:
            runs.append(run)
            run = []
    runs.append(run)
    for run in (r for r in runs if r):
        text = vocab.decode(run, skip_specials=False)
        try:
            back = vocab.encode(text).tolist()
        except SeqgenError as e:
            raise AssertionError(
                f"{name}: ids {run[:12]}... decode to {text[:60]!r}, which does not encode "
                f"({e}); the vocabulary must encode its own text (prompts are encoded with "
                "it)") from e
        assert back == run, (
            f"{name}: ids {run[:12]}... decode to {text[:60]!r}, which encodes to "
            f"{back[:12]}...; the vocabulary must encode its own text (prompts are encoded "
            "with it)")
