"""The "pairs" dataset: aligned input -> target strings of equal length (task "aligned").

The lesson's toy mapping hello -> ohlol: the output at step t may depend on the whole
input. Pairs come inline (`pairs: [["hello", "ohlol"]]`), from a file (`path`), or as the
text such a file holds (`text`): tsv is input<TAB>target per line, jsonl is
{"input": ..., "target": ...} per line; `format` names which (default: a file's suffix,
.tsv or .jsonl; tsv for `text`). Character level; the vocabulary is exactly the
characters of inputs and targets.

Validation: with valid_fraction 0 (the default) the validation split IS the training
split: for a toy mapping the question is whether the model learned these very pairs.
valid_fraction > 0 holds out the tail of the pairs instead.
"""
from __future__ import annotations

import json
from pathlib import Path

from seqgen import DataError, Dataset, SequenceSet, Vocab, read_text

from .files import describe_text, in_memory, resolve
from .options import one_of, valid_fraction_option
from .sequences import split_ids, tail
from .splits import train_size

SOURCES = {"pairs": "inline [input, target] pairs", "path": "a .tsv or .jsonl file",
           "text": "what such a file holds, as a string"}
FORMATS = {".tsv": "tsv", ".jsonl": "jsonl"}
PAIRS_SCHEMA = {
    "type": "object",
    "properties": {
        "pairs": {"type": "array", "minItems": 1,
                  "items": {"type": "array", "minItems": 2, "maxItems": 2,
                            "prefixItems": [{"type": "string"}, {"type": "string"}]},
                  "description": "Inline [input, target] pairs, e.g. [[\"hello\", \"ohlol\"]]. "
                                 "Give this, 'path' or 'text'."},
        "path": {"type": "string", "minLength": 1,
                 "description": "A .tsv (input<TAB>target per line) or .jsonl "
                                "({\"input\": ..., \"target\": ...} per line) file. Give "
                                "this, 'pairs' or 'text'."},
        "text": {"type": "string", "minLength": 1,
                 "description": "What a pairs file holds, as a string: tsv "
                                "(\"hello\\tohlol\\nabc\\tcba\\n\") unless 'format' says "
                                "jsonl. Give this, 'pairs' or 'path'."},
        "format": {"enum": ["tsv", "jsonl", None], "default": None,
                   "description": "How 'path' or 'text' is written: 'tsv' (input<TAB>target "
                                  "per line) or 'jsonl' ({\"input\": ..., \"target\": ...} per "
                                  "line); null: from the file's suffix (.tsv, .jsonl), and tsv "
                                  "for 'text'."},
        "valid_fraction": {**valid_fraction_option(0.0), "description":
                           "Fraction of pairs held out for validation, from the end; 0 "
                           "validates on the training pairs (right for a toy mapping)."},
    },
    **one_of(SOURCES),
}
INLINE_NO_FORMAT = {"not": {"enum": ["tsv", "jsonl"]},   # inline pairs have no format
                    "description": "$.dataset.pairs are given inline; 'format' is for "
                                   "'path' or 'text' (leave it null)"}
PAIRS_SCHEMA["dependentSchemas"].setdefault("pairs", {"properties": {}})
PAIRS_SCHEMA["dependentSchemas"]["pairs"]["properties"]["format"] = INLINE_NO_FORMAT
DESCRIPTION = ("Aligned input->target strings of equal length, inline, .tsv/.jsonl or that "
               "text (task aligned).")

Pair = tuple[str, str, str]  # (input, target, where: "pair 3" or "file.tsv line 4")


def build_pairs_dataset(pairs=None, path=None, text=None, format=None,
                        valid_fraction=0.0) -> Dataset:
    given = [n for n, v in (("pairs", pairs), ("path", path), ("text", text)) if v is not None]
    if len(given) != 1:
        raise DataError("pairs dataset: give exactly one of 'pairs' (inline), 'path' (a "
                        "file) or 'text' (what such a file holds)"
                        + (f"; got {' and '.join(given)}" if given else ""))
    if format not in (None, *FORMATS.values()):
        raise DataError(f"pairs dataset: unknown format {format!r}; use 'tsv' or 'jsonl'")
    if pairs is not None:
        if format is not None:
            raise DataError("pairs dataset: 'format' is for 'path' or 'text', not inline pairs")
        source = "inline pairs"
        items = [(*_inline_pair(p, f"pair {i}"), f"pair {i}") for i, p in enumerate(pairs)]
    elif path is not None:
        file = _one_file(path)
        source, format = str(file), format or _format_of(file)
        items = _parse_pairs(read_text(file), format, source)
    else:
        source = describe_text(text)
        items = _parse_pairs(in_memory(text), format or "tsv", source)
    if not items:
        raise DataError(f"{source}: no pairs")
    for x, y, where in items:
        if len(x) != len(y) or not x:
            raise DataError(f"{where}: input {x!r} has {len(x)} characters and target {y!r} "
                            f"has {len(y)}; aligned pairs need equal, non-zero lengths")

    inputs, targets = "".join(x for x, _, _ in items), "".join(y for _, y, _ in items)
    vocab = Vocab.from_text(inputs + targets)
    sizes = [len(x) for x, _, _ in items]
    data = SequenceSet(split_ids(vocab.encode(inputs), sizes),
                       split_ids(vocab.encode(targets), sizes))
    train, valid = tail(data, train_size(len(data), valid_fraction, "pairs", source))
    info = {"pairs": len(data), "train_pairs": len(train),
            "valid_pairs": len(valid) if valid else len(train), "vocab_size": len(vocab)}
    return Dataset(vocab=vocab, task="aligned", train=train,
                   valid=valid if valid is not None else train, source=source, info=info)


def _inline_pair(pair, where: str) -> tuple[str, str]:
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2
            and all(isinstance(s, str) for s in pair)):
        raise DataError(f"{where}: expected [input, target] (two strings), got {pair!r}")
    return pair[0], pair[1]


def _one_file(path: str) -> Path:
    files = resolve(path)
    if len(files) != 1:
        raise DataError(f"{path}: matches {len(files)} files; the pairs dataset reads one")
    return files[0]


def _format_of(file: Path) -> str:
    found = FORMATS.get(file.suffix.lower())
    if found is None:
        raise DataError(f"{file}: unknown pairs format {file.suffix!r}; use .tsv "
                        "(input<TAB>target per line) or .jsonl ({\"input\", \"target\"}), "
                        "or name it with 'format'")
    return found


def _parse_pairs(text: str, format: str, source: str) -> list[Pair]:
    """The pairs of a tsv or jsonl text, each with where it is ("<source> line 4")."""
    parse = {"tsv": _tsv_pair, "jsonl": _jsonl_pair}[format]
    items = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            where = f"{source} line {number}"
            items.append((*parse(line, where), where))
    return items


def _tsv_pair(line: str, where: str) -> tuple[str, str]:
    fields = line.split("\t")
    if len(fields) != 2:
        raise DataError(f"{where}: expected input<TAB>target, found {len(fields)} field(s)")
    return fields[0], fields[1]


def _jsonl_pair(line: str, where: str) -> tuple[str, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON: {e.msg} at column {e.colno}") from e
    if not (isinstance(obj, dict) and isinstance(obj.get("input"), str)
            and isinstance(obj.get("target"), str)):
        raise DataError(f"{where}: expected an object with string 'input' and 'target'")
    return obj["input"], obj["target"]
