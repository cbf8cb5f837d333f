"""Every seqgen error survives pickle: the same type, message, attributes and exit code,
with every protocol and across a spawned worker process (compare with jobs > 1, or an
application's own ProcessPoolExecutor). The mechanism is SeqgenError.__reduce__, so a
subclass with its own __init__ (a plugin's included) needs nothing of its own."""
from __future__ import annotations

import importlib
import inspect
import multiprocessing
import pickle
import pkgutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import seqgen
import seqgen_plugins
from seqgen import DataError, SeqgenError, SpecError


def _import_everything() -> None:
    """Import every module of seqgen and of the built-in plugins, so that every error
    class they define is among SeqgenError's subclasses."""
    for package in (seqgen, seqgen_plugins):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except ImportError:   # an optional dependency missing: its errors cannot occur
                continue


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


_import_everything()
OURS = sorted({c for c in [SeqgenError, *_subclasses(SeqgenError)]
               if c.__module__.split(".")[0] in ("seqgen", "seqgen_plugins")},
              key=lambda c: f"{c.__module__}.{c.__qualname__}")

# Representative values for the parameters of a custom __init__, by name; any other
# parameter without a default gets a string naming it.
VALUES = {"problems": ["$.model.cell.hidden_size: -3 is less than the minimum of 1",
                       "$.train.epochs: 'x' is not of type 'integer'"],
          "source": "spec.json", "signal_name": "SIGTERM",
          "message": "interrupted before training started", "run_dir": Path("runs/x"),
          "pid": 4242}


def arguments(cls: type) -> tuple[tuple, dict]:
    """(args, kwargs) that construct `cls` with every parameter given a value."""
    if cls.__init__ in (BaseException.__init__, Exception.__init__):
        return (f"{cls.__name__}: something the user can fix",), {}
    args, kwargs = [], {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = VALUES.get(p.name, f"<{p.name}>")
        if p.kind == p.KEYWORD_ONLY:
            kwargs[p.name] = value
        else:
            args.append(value)
    return tuple(args), kwargs


# -- errors as a plugin might define them -------------------------------------------------
class CorpusLineError(DataError):
    """Positional and keyword-only parameters, none of them the message."""

    exit_code = 3

    def __init__(self, corpus: str, line: int, *, hint: str = "check the file"):
        self.corpus, self.line, self.hint = corpus, line, hint
        super().__init__(f"{corpus} line {line}: unreadable; {hint}")


class BudgetError(SpecError):
    """A SpecError subclass that rewrites the message, as MemoryLimitError does."""

    def __init__(self, needed: int, *, available: int):
        self.needed, self.available = needed, available
        super().__init__([f"$.model: needs {needed} bytes"], source="plugin")
        Exception.__init__(self, f"needs {needed} bytes, {available} available")


class NoMessageError(SeqgenError):
    """Builds no message at all, and keeps a mutable attribute."""

    def __init__(self, *, tags: list[str]):
        self.tags = tags
        super().__init__()


CASES = [(cls, *arguments(cls)) for cls in OURS] + [
    (CorpusLineError, ("corpus.txt", 7), {"hint": "re-save it as UTF-8"}),
    (BudgetError, (10**12,), {"available": 10**9}),
    (NoMessageError, (), {"tags": ["a", "b"]}),
]
IDS = [f"{cls.__module__}.{cls.__qualname__}" for cls, _, _ in CASES]


def assert_same(copy: BaseException, original: BaseException) -> None:
    assert type(copy) is type(original)
    assert str(copy) == str(original)
    assert copy.args == original.args
    assert vars(copy) == vars(original)            # problems, source, signal, run_dir, ...
    assert copy.exit_code == original.exit_code


def test_every_error_class_is_covered():
    names = {f"{c.__module__}.{c.__qualname__}" for c in OURS}
    assert {"seqgen.errors.SpecError", "seqgen.budget.MemoryLimitError",
            "seqgen.interrupt.Interrupted", "seqgen.lock.RunInUse"} <= names


@pytest.mark.parametrize("cls, args, kwargs", CASES, ids=IDS)
def test_round_trip_with_every_protocol(cls, args, kwargs):
    error = cls(*args, **kwargs)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert_same(pickle.loads(pickle.dumps(error, protocol)), error)


def test_spec_error_keeps_its_problems_not_one_per_character():
    error = SpecError(["$.a: bad", "$.b: worse"], source="s.json")
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == ["$.a: bad", "$.b: worse"] and copy.source == "s.json"
    assert str(copy) == "s.json: invalid spec (2 problems):\n  $.a: bad\n  $.b: worse"


def test_a_cause_is_not_needed_and_the_copy_raises():
    try:
        try:
            raise KeyError("inner")
        except KeyError as e:
            raise CorpusLineError("c.txt", 1) from e
    except CorpusLineError as e:
        copy = pickle.loads(pickle.dumps(e))
    with pytest.raises(CorpusLineError, match=r"^c\.txt line 1: unreadable; check the file$"):
        raise copy


def raise_in_worker(cls: type, args: tuple, kwargs: dict) -> None:
    raise cls(*args, **kwargs)


@pytest.fixture(scope="module")
def pool():
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        yield executor


@pytest.mark.parametrize("cls, args, kwargs", CASES, ids=IDS)
def test_raised_in_a_spawned_worker(pool, cls, args, kwargs):
    future = pool.submit(raise_in_worker, cls, args, kwargs)
    with pytest.raises(cls) as caught:
        future.result(timeout=120)
    assert_same(caught.value, cls(*args, **kwargs))
