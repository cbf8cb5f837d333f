"""Every type the public API hands out is exported from `seqgen` and documented.

Walks `seqgen.load` and the public methods and properties of Session and LoadedModel,
resolves their return annotations (typing.get_type_hints), and follows every seqgen class
found there, through list[...], X | None and the like, into the fields and properties of
that class in turn (RunResult.train is a Progress, so Progress is public too). Each must
be in `seqgen.__all__` and have a docstring of its own; a dataclass's docstring names
every field.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import sys
import typing

import seqgen

ROOTS = (seqgen.Session, seqgen.LoadedModel)


def namespace() -> dict:
    """Names for forward references (TYPE_CHECKING imports, strings): every class of
    every loaded seqgen module, then seqgen's exports."""
    ns = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "seqgen" and module is not None:
            ns.update({k: v for k, v in vars(module).items()
                       if inspect.isclass(v) and k not in ns})
    return {**ns, **vars(seqgen)}


def seqgen_classes(tp) -> typing.Iterator[type]:
    """The seqgen classes in an annotation: list[Sample] | None -> Sample."""
    if inspect.isclass(tp) and tp.__module__.split(".")[0] == "seqgen":
        yield tp
    for arg in typing.get_args(tp):
        yield from seqgen_classes(arg)


def public_callables(cls: type, methods: bool = True):
    """(name, function) of cls's public methods (if `methods`) and properties."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, property):
            yield f"{cls.__name__}.{name}", attr.fget
        elif methods and isinstance(attr, (staticmethod, classmethod)):
            yield f"{cls.__name__}.{name}", attr.__func__
        elif methods and inspect.isfunction(attr):
            yield f"{cls.__name__}.{name}", attr


def returned_types() -> dict[type, str]:
    """Every seqgen class the public API returns -> where it was first found."""
    ns = namespace()
    found: dict[type, str] = {}
    todo = [("seqgen.load", seqgen.load)] + [c for cls in ROOTS for c in public_callables(cls)]
    walked: set[type] = set(ROOTS)
    while todo:
        where, fn = todo.pop(0)
        hints = typing.get_type_hints(fn, localns=ns)
        for cls in seqgen_classes(hints.get("return")):
            found.setdefault(cls, where)
            if cls in walked:
                continue
            walked.add(cls)
            todo += list(public_callables(cls, methods=False))   # what a caller reads
            if dataclasses.is_dataclass(cls):
                fields = typing.get_type_hints(cls, localns=ns)
                todo += [(f"{cls.__name__}.{f.name} (field)", _Field(fields[f.name]))
                         for f in dataclasses.fields(cls)]
    return found


class _Field:
    """A dataclass field's type, dressed as something get_type_hints can read."""

    def __init__(self, tp):
        self.__annotations__ = {"return": tp}

    def __call__(self):
        pass


def own_docstring(cls: type) -> str:
    doc = cls.__dict__.get("__doc__") or ""
    if dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}("):
        return ""                               # the signature dataclass() writes
    return doc


def test_the_walk_finds_what_it_should():
    found = returned_types()
    for cls in (seqgen.LoadedModel, seqgen.RunResult, seqgen.Score, seqgen.Sample,
                seqgen.Progress, seqgen.Strategy, seqgen.Vocab):
        assert cls in found, cls


def test_every_returned_type_is_exported():
    missing = [f"{cls.__module__}.{cls.__name__} (returned by {where})"
               for cls, where in returned_types().items()
               if cls.__name__ not in seqgen.__all__ or getattr(seqgen, cls.__name__) is not cls]
    assert missing == []


def test_every_returned_type_is_documented():
    undocumented = [f"{cls.__module__}.{cls.__name__} (returned by {where})"
                    for cls, where in returned_types().items() if not own_docstring(cls)]
    assert undocumented == []


def test_every_field_of_a_returned_dataclass_is_described():
    unnamed = []
    for cls, where in returned_types().items():
        if dataclasses.is_dataclass(cls):
            doc = own_docstring(cls)
            unnamed += [f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls)
                        if not re.search(rf"\b{re.escape(f.name)}\b", doc)]
    assert unnamed == []


def test_everything_in_all_exists():
    assert [name for name in seqgen.__all__ if not hasattr(seqgen, name)] == []
    assert len(set(seqgen.__all__)) == len(seqgen.__all__)


def test_score_is_typed_and_serialises():
    score = seqgen.Score(tokens=3, loss=0.5, perplexity=1.6487)
    assert score.to_dict() == {"tokens": 3, "loss": 0.5, "perplexity": 1.6487}
    assert seqgen.Score(2, 1.0, 2.7, [-1.0, -1.0]).to_dict()["token_logprobs"] == [-1.0, -1.0]
    assert typing.get_type_hints(seqgen.LoadedModel.score, localns=namespace())["return"] \
        is seqgen.Score
    assert dataclasses.fields(seqgen.Score)[0].name == "tokens"
    try:
        score.loss = 1.0
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("Score is not frozen")
