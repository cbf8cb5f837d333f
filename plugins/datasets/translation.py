"""The "translation" dataset: source -> target sentence pairs (task "seq2seq"), as in d2l
chapter 10.5, "Machine Translation and the Dataset" (English -> French from Anki's
fra.txt).

Pairs come inline (`pairs: [["Go.", "Va !"]]`), from a file (`path`), or as the text such
a file holds (`text`). `format` "tsv" is source<TAB>target per line, further columns
ignored (Anki's fra.txt has a third, the attribution); "json" is one JSON list of
[source, target] pairs or of {"source": ..., "target": ...} objects. A file's format
defaults from its suffix: .json is json, anything else tsv.

Pipeline, d2l's: keep the first `num_examples` pairs -> `preprocess` ("d2l":
`preprocess_nmt`: non-breaking spaces become spaces, lowercase, a space before each of
,.!? that follows no space) -> tokens (words split on whitespace, or characters) -> drop
pairs longer than `max_length` tokens -> vocabularies (tokens seen fewer than `min_freq`
times become <unk>) -> ids. Sources are their tokens only (no markers, the PairSet
contract); targets are their tokens then <eos>.

Vocabularies: d2l's two separate ones by default (the source's holds <pad> and <unk>,
the target's <pad>, <unk>, <bos> and <eos>), or one over both sides with `shared_vocab`.
At word level with preprocess "d2l" the vocabularies carry a word pattern that splits a
prompt exactly as preprocess_nmt does ("Go." -> "go", "."), so raw text can be
translated.

Validation: the tail `valid_fraction` of the pairs, in file order (no shuffling). Note
that fra.txt is sorted by length, so its tail holds the longest pairs.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from itertools import islice
from typing import Iterator

import torch

from seqgen import BOS, EOS, PAD, UNK, DataError, Dataset, PairSet, Vocab, options, read_text

from .files import describe_text, in_memory, resolve
from .options import one_of, valid_fraction_option
from .pairs import PAIRS_SCHEMA
from .sequences import split_ids
from .splits import train_size
from .tokens import encode_words

SOURCE_SPECIALS = (PAD, UNK)
TARGET_SPECIALS = (PAD, UNK, BOS, EOS)
FORMATS = ("tsv", "json")
#: What a word is after d2l's preprocess_nmt, found in raw (lowercased) text: an optional
#: punctuation mark then a run of anything but whitespace and punctuation. "go." -> "go",
#: "."; "a.b" -> "a", ".b" (as preprocess_nmt's "a .b" splits).
D2L_WORD_PATTERN = r"[,.!?]?[^\s,.!?]*"
#: preprocess_nmt's "a punctuation mark whose previous character is not a space".
D2L_NO_SPACE = re.compile(r"(?<=[^ ])([,.!?])")
RESERVED = (PAD, BOS, EOS)

SOURCES = {"pairs": "inline [source, target] pairs", "path": "a .tsv or .json file",
           "text": "what such a file holds, as a string"}
TRANSLATION_SCHEMA = {
    "type": "object",
    "properties": {
        "pairs": {**PAIRS_SCHEMA["properties"]["pairs"],    # [[str, str], ...]
                  "description": "Inline [source, target] pairs, e.g. [[\"Go.\", \"Va !\"]]. "
                                 "Give this, 'path' or 'text'."},
        "path": {"type": "string", "minLength": 1,
                 "description": "A file of pairs: tsv (source<TAB>target per line, further "
                                "columns ignored, e.g. d2l's/Anki's fra.txt) or .json (a list "
                                "of [source, target] or {\"source\", \"target\"}). Give this, "
                                "'pairs' or 'text'."},
        "text": {"type": "string", "minLength": 1,
                 "description": "What a pairs file holds, as a string: tsv "
                                "(\"Go.\\tVa !\\n...\") unless 'format' says json. Give "
                                "this, 'pairs' or 'path'."},
        "format": {"enum": [*FORMATS, None], "default": None,
                   "description": "How 'path' or 'text' is written: 'tsv' or 'json'; null: "
                                  "json for a .json file, tsv otherwise."},
        "preprocess": {"enum": ["d2l", "none"], "default": "d2l",
                       "description": "d2l: the book's preprocess_nmt (non-breaking spaces "
                                      "become spaces, lowercase, a space before ,.!? that "
                                      "follows no space); none: the text as it is."},
        "level": {**options.LEVEL, "default": "word",
                  "description": "Tokens are words (split on whitespace, as d2l) or "
                                 "characters."},
        "shared_vocab": {"type": "boolean", "default": False,
                         "description": "One vocabulary for sources and targets; false: "
                                        "one each (as d2l)."},
        "min_freq": {**options.MIN_FREQ, "default": 2,
                     "description": "Tokens seen fewer times (in their vocabulary's side, "
                                    "or both with shared_vocab) become <unk>; d2l uses 2."},
        "num_examples": {"type": ["integer", "null"], "minimum": 1, "default": None,
                         "description": "Use only the first N pairs (d2l's book run uses "
                                        "600); null uses all."},
        "max_length": {"type": ["integer", "null"], "minimum": 1, "default": None,
                       "description": "Drop pairs whose source or target has more tokens "
                                      "than this (<eos> not counted); null keeps all."},
        "valid_fraction": {**valid_fraction_option(0.1), "description":
                           "Fraction of the pairs held out for validation, from the end "
                           "(file order); 0 means no validation split."},
    },
    **one_of(SOURCES),
}
TRANSLATION_SCHEMA["dependentSchemas"].setdefault("pairs", {"properties": {}})
TRANSLATION_SCHEMA["dependentSchemas"]["pairs"]["properties"]["format"] = {
    "not": {"enum": list(FORMATS)},
    "description": "$.dataset.pairs are given inline; 'format' is for 'path' or 'text' "
                   "(leave it null)"}
DESCRIPTION = ("Translation pairs (d2l 10.5, e.g. fra.txt): source -> target sentences, "
               "inline, .tsv/.json or that text (task seq2seq).")

Raw = tuple[str, str, str]  # (source, target, where: "fra.txt:12")


def preprocess_nmt(text: str) -> str:
    """d2l's preprocess_nmt: '\\u202f' and '\\xa0' become spaces, the text is lowercased,
    and a space goes before each of ,.!? whose previous character is not a space.

    (d2l 0.17's preprocess_nmt, to the letter. d2l 1.0's MTFraEng._preprocess looks at
    the previous character before lowercasing: the same but for the few characters whose
    lowercase is longer, where its indices drift.)"""
    text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
    return D2L_NO_SPACE.sub(r" \1", text)


def build_translation_dataset(pairs=None, path=None, text=None, format=None,
                              preprocess="d2l", level="word", shared_vocab=False, min_freq=2,
                              num_examples=None, max_length=None,
                              valid_fraction=0.1) -> Dataset:
    if preprocess not in ("d2l", "none"):
        raise DataError(f"translation dataset: unknown preprocess {preprocess!r}; "
                        "use 'd2l' or 'none'")
    if level not in ("word", "char"):
        raise DataError(f"translation dataset: unknown level {level!r}; use 'word' or 'char'")
    raw, source = _read(pairs, path, text, format)
    raw = list(islice(raw, num_examples))
    if not raw:
        raise DataError(f"{source}: no pairs")
    src, tgt = [], []
    for x, y, where in raw:
        src.append(_tokens(x, level, preprocess, f"{where}: source"))
        tgt.append(_tokens(y, level, preprocess, f"{where}: target"))
    dropped = 0
    if max_length is not None:
        kept = [(x, y) for x, y in zip(src, tgt) if len(x) <= max_length and len(y) <= max_length]
        dropped = len(src) - len(kept)
        if not kept:
            raise DataError(f"{source}: all {len(src)} pairs have a side longer than "
                            f"max_length {max_length} tokens; raise max_length")
        src, tgt = [x for x, _ in kept], [y for _, y in kept]

    tokenisation = {"level": level, "lowercase": preprocess == "d2l",
                    "pattern": D2L_WORD_PATTERN if (level, preprocess) == ("word", "d2l")
                    else None}
    if shared_vocab:
        vocab = _vocab([*src, *tgt], min_freq, TARGET_SPECIALS, **tokenisation)
        source_vocab = None
    else:
        vocab = _vocab(tgt, min_freq, TARGET_SPECIALS, **tokenisation)
        source_vocab = _vocab(src, min_freq, SOURCE_SPECIALS, **tokenisation)
    data = PairSet(_encode(vocab if source_vocab is None else source_vocab, src),
                   _encode(vocab, [[*y, EOS] for y in tgt]), bos_id=vocab.bos_id)

    train, valid = pair_splits(data, valid_fraction, source)
    info = {"pairs": len(data), **split_info(train, valid),
            **({"vocab_size": len(vocab)} if shared_vocab else
               {"source_vocab_size": len(source_vocab), "target_vocab_size": len(vocab)})}
    if max_length is not None:
        info["dropped_too_long"] = dropped
    return Dataset(vocab=vocab, task="seq2seq", train=train, valid=valid, source=source,
                   info=info, source_vocab=source_vocab)


# -- splits and info (shared with the reversal dataset) -------------------------------------
def pair_splits(data: PairSet, valid_fraction: float, source: str
                ) -> tuple[PairSet, PairSet | None]:
    """The first pairs train, the tail `valid_fraction` validates (None for 0)."""
    n = train_size(len(data), valid_fraction, "pairs", source)
    train = PairSet(data.sources[:n], data.targets[:n], bos_id=data.bos_id)
    if n == len(data):
        return train, None
    return train, PairSet(data.sources[n:], data.targets[n:], bos_id=data.bos_id)


def split_info(train: PairSet, valid: PairSet | None) -> dict:
    """Sizes and mean lengths (targets counting their <eos>) for `Dataset.info`."""
    every = [train] if valid is None else [train, valid]
    sources = [len(s) for split in every for s in split.sources]
    targets = [len(t) for split in every for t in split.targets]
    return {"train_pairs": len(train), "valid_pairs": len(valid) if valid else 0,
            "mean_source_tokens": round(sum(sources) / len(sources), 2),
            "mean_target_tokens": round(sum(targets) / len(targets), 2)}


# -- tokens and vocabularies ----------------------------------------------------------------
def _tokens(text: str, level: str, preprocess: str, where: str) -> list[str]:
    if preprocess == "d2l":
        text = preprocess_nmt(text)
    tokens = text.split() if level == "word" else list(text.strip())
    if not tokens:
        raise DataError(f"{where} is empty")
    reserved = [t for t in RESERVED if t in tokens]
    if reserved:
        raise DataError(f"{where} holds {reserved[0]!r}, which the vocabulary reserves")
    return tokens


def _vocab(seqs: list[list[str]], min_freq: int, specials, level: str, lowercase: bool,
           pattern: str | None) -> Vocab:
    """The tokens of `seqs` seen at least `min_freq` times, plus `specials` (sorted by
    Vocab, so the same pairs give the same ids everywhere)."""
    counts = Counter(t for seq in seqs for t in seq)
    kept = [t for t, n in counts.items() if n >= min_freq]
    return Vocab(kept, level=level, specials=specials, pattern=pattern, lowercase=lowercase)


def _encode(vocab: Vocab, seqs: list[list[str]]) -> list[torch.Tensor]:
    """One tensor per sequence; tokens outside the vocabulary become <unk>."""
    flat = encode_words(vocab, [t for seq in seqs for t in seq])
    return split_ids(flat, [len(seq) for seq in seqs])


# -- reading pairs ---------------------------------------------------------------------------
def _read(pairs, path, text, format) -> tuple[Iterator[Raw], str]:
    """The raw pairs, lazily (num_examples stops reading), and where they come from."""
    given = [n for n, v in (("pairs", pairs), ("path", path), ("text", text)) if v is not None]
    if len(given) != 1:
        raise DataError("translation dataset: give exactly one of 'pairs' (inline), 'path' "
                        "(a file) or 'text' (what such a file holds)"
                        + (f"; got {' and '.join(given)}" if given else ""))
    if format not in (None, *FORMATS):
        raise DataError(f"translation dataset: unknown format {format!r}; use 'tsv' or 'json'")
    if pairs is not None:
        if format is not None:
            raise DataError("translation dataset: 'format' is for 'path' or 'text', not "
                            "inline pairs")
        return (_pair(p, f"pairs[{i}]") for i, p in enumerate(pairs)), "inline pairs"
    if path is not None:
        files = resolve(path)
        if len(files) != 1:
            raise DataError(f"{path}: matches {len(files)} files; the translation dataset "
                            "reads one")
        file = files[0]
        source = str(file)
        content = read_text(file)
        format = format or ("json" if file.suffix.lower() == ".json" else "tsv")
    else:
        source, content = describe_text(text), in_memory(text)
        format = format or "tsv"
    return (_tsv if format == "tsv" else _json)(content, source), source


def _tsv(content: str, source: str) -> Iterator[Raw]:
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{where}: expected source<TAB>target, found no tab")
        yield _checked(fields[0], fields[1], where)


def _json(content: str, source: str) -> Iterator[Raw]:
    try:
        items = json.loads(content)
    except json.JSONDecodeError as e:
        raise DataError(f"{source}:{e.lineno}: not valid JSON: {e.msg} at column "
                        f"{e.colno}") from None
    if not isinstance(items, list):
        raise DataError(f"{source}: expected a JSON list of [source, target] pairs or "
                        f"{{\"source\": ..., \"target\": ...}} objects, found "
                        f"{type(items).__name__}")
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get("source"), str) \
                and isinstance(item.get("target"), str):
            item = [item["source"], item["target"]]
        yield _pair(item, f"{source}: [{i}]")


def _pair(pair, where: str) -> Raw:
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2
            and all(isinstance(s, str) for s in pair)):
        raise DataError(f"{where}: expected [source, target] (two strings) or an object "
                        f"with string 'source' and 'target', got {str(pair)[:80]}")
    return _checked(pair[0], pair[1], where)


def _checked(source: str, target: str, where: str) -> Raw:
    for side, value in (("source", source), ("target", target)):
        if not value.strip():
            raise DataError(f"{where}: {side} is empty")
    return source, target, where
