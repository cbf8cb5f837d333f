"""How varied generated text is: distinct-n (Li et al. 2016), the share of a text's
n-grams (of tokens: characters or words, as the vocabulary splits) that are distinct.

    distinct_n(["a", "b", "a", "b"], 2) = |{ab, ba}| / 3 = 0.667

A text that loops ("the the the") scores near 0, one that never repeats scores 1. Over
several samples (`diversity`), n-grams are pooled, so samples that repeat each other
score low too. None where a text has fewer than n tokens.
"""
from __future__ import annotations

from typing import Iterable


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: list[str], n: int) -> float | None:
    grams = ngrams(tokens, n)
    return round(len(set(grams)) / len(grams), 4) if grams else None


def diversity(texts: Iterable[list[str]]) -> dict:
    """{"distinct_1", "distinct_2"} over the pooled n-grams of several tokenised texts."""
    pooled = {1: [], 2: []}
    for tokens in texts:
        for n in pooled:
            pooled[n] += ngrams(tokens, n)
    return {f"distinct_{n}": round(len(set(g)) / len(g), 4) if g else None
            for n, g in pooled.items()}
