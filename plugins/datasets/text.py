"""The "text" dataset: a language-modelling corpus (task "lm") from UTF-8 files or a string.

Pipeline: read every file (bytes, decoded once) or take `text` as given -> `clean` -> keep
the first `max_chars` -> newlines -> lowercase -> tokens (chars or words) -> vocabulary ->
one id stream -> the tail `valid_fraction` of the stream is the validation split (unseen,
contiguous text).

The vocabulary is built from the whole corpus, so validation never meets an unknown
character; at word level, words rarer than `min_freq` become <unk> in both splits.

With `cache: true` the same pipeline runs on the files in pieces, into a token cache that
the splits memory-map (streamed.py): corpora larger than memory, encoded once.
"""
from __future__ import annotations

import re

from seqgen import DataError, Dataset, TokenStream, Vocab

from .files import describe, load, resolve
from .options import LEVEL_OPTIONS, SOURCE_OPTIONS, SOURCES, one_of, valid_fraction_option
from .splits import train_size
from .streamed import cached_corpus
from .tokens import encode_words, split_words, word_vocab

TEXT_SCHEMA = {
    "type": "object",
    "properties": {
        **SOURCE_OPTIONS,
        **LEVEL_OPTIONS,
        "newlines": {"enum": ["keep", "space"], "default": "keep",
                     "description": "Keep newlines as tokens, or replace each with a space."},
        "clean": {"enum": ["none", "d2l"], "default": "none",
                  "description": "d2l: the textbook's read_time_machine, i.e. every run of "
                                 "non-letters becomes one space, each line is stripped and "
                                 "lowercased, and the lines are joined with nothing."},
        "max_chars": {"type": ["integer", "null"], "minimum": 1, "default": None,
                      "description": "Use only the first N characters of the corpus "
                                     "(before splitting); null uses all of it."},
        "valid_fraction": valid_fraction_option(0.1),
        "cache": {"type": "boolean", "default": False,
                  "description": "For corpora larger than memory: stream the files twice "
                                 "(vocabulary, then ids) into a token cache that runs "
                                 "memory-map, and reuse it while the files are unchanged. "
                                 "Same vocabulary and ids as false. Needs 'path' or 'paths'."},
        "cache_dir": {"type": ["string", "null"], "minLength": 1, "default": None,
                      "description": "Where the token cache goes; null: .seqgen-cache/ "
                                     "beside the first corpus file."},
    },
    **one_of(SOURCES),
}
D2L_NON_LETTERS = re.compile("[^A-Za-z]+")
DESCRIPTION = ("Language-modelling corpus from UTF-8 text files or a string, char or word "
               "level (task lm).")


def build_text_dataset(path=None, paths=None, text=None, level="char", pattern=None,
                       min_freq=1, lowercase=False, newlines="keep", clean="none",
                       max_chars=None, valid_fraction=0.1, cache=False,
                       cache_dir=None) -> Dataset:
    if cache:
        if text is not None:
            raise DataError("'cache' is for corpora in files ('path' or 'paths'); "
                            "'text' is in memory already")
        files = resolve(path, paths)
        source = describe(files)
        if level == "word" and pattern is not None:
            split_words("", pattern)                 # a bad regex: refused before reading
        vocab, ids, info = cached_corpus(
            files, source, cache_dir, level=level, pattern=pattern, min_freq=min_freq,
            lowercase=lowercase, newlines=newlines, clean=clean, max_chars=max_chars)
        return _split(vocab, ids, valid_fraction, source,
                      {"files": len(files), "characters": info["characters"],
                       "cache": info["cache"], "cache_hit": info["cache_hit"]})
    text, source, files = load(path, paths, text)
    if clean == "d2l":
        text = "".join(D2L_NON_LETTERS.sub(" ", line).strip().lower()
                       for line in text.splitlines())
    if max_chars is not None:
        text = text[:max_chars]
    if newlines == "space":
        text = text.replace("\n", " ")
    if lowercase:
        text = text.lower()

    if level == "char":
        vocab = Vocab.from_text(text)
        ids = vocab.encode(text)
        vocab.lowercase = lowercase          # prompts get the same preprocessing
    else:
        words = split_words(text, pattern)
        if not words:
            raise DataError(f"{source}: no words found"
                            + (f" matching {pattern!r}" if pattern else ""))
        vocab = word_vocab(words, min_freq, pattern=pattern, lowercase=lowercase)
        ids = encode_words(vocab, words)

    vocab.newlines = newlines                # prompts and scored text get the same
    return _split(vocab, ids, valid_fraction, source, {"files": files, "characters": len(text)})


def _split(vocab: Vocab, ids, valid_fraction: float, source: str, info: dict) -> Dataset:
    """The tail `valid_fraction` of the ids is the validation split (views, no copies)."""
    n_train = train_size(len(ids), valid_fraction, "tokens", source)
    train = TokenStream(ids[:n_train])
    valid = TokenStream(ids[n_train:]) if n_train < len(ids) else None
    info = {**info, "tokens": len(ids), "train_tokens": n_train,
            "valid_tokens": len(ids) - n_train, "vocab_size": len(vocab),
            "dtype": str(ids.dtype).replace("torch.", "")}
    return Dataset(vocab=vocab, task="lm", train=train, valid=valid, source=source, info=info)
