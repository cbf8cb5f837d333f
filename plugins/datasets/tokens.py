"""Words to ids: `str.split` or a regex, then one dict lookup per token.

(Characters need nothing here: `seqgen.Vocab.from_text` and `Vocab.encode` are the fast,
vectorised path for a 100 MB corpus.)
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import torch

from seqgen import UNK, DataError, Vocab, smallest_int_dtype


def split_words(text: str, pattern: str | None) -> list[str]:
    """Whitespace-separated words, or every non-empty match of the regex `pattern`."""
    if pattern is None:
        return text.split()
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise DataError(f"pattern {pattern!r} is not a valid regular expression: {e}") from e
    return [m.group() for m in regex.finditer(text) if m.group()]


def word_vocab(words: list[str], min_freq: int, specials=(), pattern: str | None = None,
               lowercase: bool = False) -> Vocab:
    """Words seen at least `min_freq` times, plus <unk> for the rest, plus `specials`.
    `pattern` and `lowercase` are saved with it, so prompts are split the same way."""
    return vocab_from_counts(Counter(words), min_freq, [UNK, *specials], pattern, lowercase)


def vocab_from_counts(counts: Counter, min_freq: int, specials, pattern: str | None,
                      lowercase: bool) -> Vocab:
    """The words counted at least `min_freq` times, plus `specials`."""
    kept = [w for w, c in counts.items() if c >= min_freq]
    return Vocab(kept, level="word", specials=specials, pattern=pattern, lowercase=lowercase)


def encode_words(vocab: Vocab, words: list[str]) -> torch.Tensor:
    """[len(words)] ids; words outside the vocabulary become <unk>."""
    lookup = _OrUnk(vocab.stoi)
    lookup.unk = vocab.unk_id
    ids = np.fromiter(map(lookup.__getitem__, words), dtype=np.int64, count=len(words))
    return torch.from_numpy(ids).to(smallest_int_dtype(len(vocab)))


class _OrUnk(dict):
    """stoi whose missing words read as <unk>: `map(d.__getitem__, words)` runs in C,
    a quarter faster than a generator of stoi.get calls."""
    unk: int | None = None

    def __missing__(self, word: str) -> int | None:
        return self.unk
