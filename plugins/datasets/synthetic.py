"""A built-in corpus that needs no file: sentences from a tiny grammar.

    "the old cat sees a red bird. a dog likes the small tree."

The text is easy to read, so a learner sees at a glance whether generated samples are
made of real words and well-formed sentences. The grammar has about 1.9 bits of choice
per word, so a perfect model's perplexity is well above 1: samples vary. Generated from
a seed with Python's own `random.Random`, so the same options give the same text
everywhere.
"""
from __future__ import annotations

import random

from seqgen import Dataset, TokenStream, Vocab

DETERMINERS = ("the", "a")
ADJECTIVES = ("old", "red", "small", "happy", "quiet")
NOUNS = ("cat", "dog", "bird", "tree", "house", "river")
VERBS = ("sees", "likes", "finds", "follows")


def sentence(rng: random.Random) -> str:
    def phrase() -> str:
        det = rng.choice(DETERMINERS)
        words = [rng.choice(ADJECTIVES)] if rng.random() < 0.5 else []
        words.append(rng.choice(NOUNS))
        if det == "a" and words[0][0] in "aeiou":
            det = "an"
        return " ".join([det, *words])

    return f"{phrase()} {rng.choice(VERBS)} {phrase()}."


def grammar_text(num_chars: int, seed: int) -> str:
    rng = random.Random(seed)
    parts, size = [], 0
    while size < num_chars:
        s = sentence(rng) + ("\n" if rng.random() < 0.2 else " ")
        parts.append(s)
        size += len(s)
    return "".join(parts)[:num_chars]


def build_synthetic(num_chars: int = 40_000, seed: int = 0, valid_fraction: float = 0.1) -> Dataset:
    text = grammar_text(num_chars, seed)
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    n_valid = int(len(ids) * valid_fraction)
    train, valid = ids[: len(ids) - n_valid], ids[len(ids) - n_valid:]
    return Dataset(vocab, "lm", TokenStream(train), TokenStream(valid) if n_valid else None,
                   source=f"synthetic grammar (seed {seed})",
                   info={"characters": len(text), "vocabulary": len(vocab)})


SCHEMA = {
    "type": "object",
    "properties": {
        "num_chars": {"type": "integer", "minimum": 100, "default": 40_000,
                      "description": "Length of the generated corpus in characters."},
        "seed": {"type": "integer", "minimum": 0, "default": 0,
                 "description": "Seed of the text generator (independent of the run seed)."},
        "valid_fraction": {"type": "number", "minimum": 0, "exclusiveMaximum": 1,
                           "default": 0.1,
                           "description": "Share of the text, taken from its end, kept for validation."},
    },
}
