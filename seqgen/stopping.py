"""Where generated text ends: at <eos>, or just before the first stop string.

Stop strings cut text, not tokens: a stop may begin inside a token (word level) or span
several. A row ends at the token that completes a stop string; its text is cut before
the stop, and only the tokens that lie wholly before the cut keep their log-probabilities.
"""
from __future__ import annotations

from bisect import bisect_right

from .vocab import Vocab


class RowText:
    """One row's text, built token by token exactly as `Vocab.decode` would build it."""

    def __init__(self, vocab: Vocab, stops: tuple[str, ...]):
        self.vocab, self.stops = vocab, stops
        self.longest = max(map(len, stops), default=0)
        self.text = ""
        self.ends: list[int] = []    # len(text) after each token
        self.cut: int | None = None  # where the first stop string begins, once one has
        self.ended = False
        self.used = 0                # tokens added, the one that ended the row included

    def add(self, token: int) -> bool:
        """Append one token; True when it ends the row (<eos> or a completed stop)."""
        self.used += 1
        if token == self.vocab.eos_id:
            self.ended = True
            return True
        tok = self.vocab.tokens[token]
        if self.vocab.shown(tok):
            sep = self.vocab.separator if self.vocab.level == "word" and self.text else ""
            # A stop completed by this token starts at most longest-1 characters before it.
            start = max(0, len(self.text) - self.longest + 1)
            self.text += sep + self.vocab.text_of(tok)
            self.cut = first_stop(self.text, self.stops, start)
            self.ended = self.cut is not None
        self.ends.append(len(self.text))
        return self.ended

    def final(self) -> tuple[str, int, int]:
        """(text cut before the stop, how many tokens lie wholly inside it, used)."""
        if self.cut is None:
            return self.text, len(self.ends), self.used
        return self.text[:self.cut], bisect_right(self.ends, self.cut), self.used

    def settled(self) -> str:
        """The part of the text no later token can cut: all of it but the longest suffix
        that begins a stop string (what a stream may show now)."""
        if self.cut is not None:
            return self.text[:self.cut]
        for n in range(min(self.longest - 1, len(self.text)), 0, -1):
            if any(s.startswith(self.text[-n:]) for s in self.stops):
                return self.text[:-n]
        return self.text


def first_stop(text: str, stops: tuple[str, ...], start: int = 0) -> int | None:
    """Where the earliest stop string found at or after `start` begins, or None."""
    found = [i for i in (text.find(s, start) for s in stops) if i >= 0]
    return min(found, default=None)


def finish(vocab: Vocab, tokens: list[int], stops: tuple[str, ...]) -> tuple[str, int, int]:
    """Generated ids -> (text, kept, used).

    text: decoded up to <eos>, cut before the first stop string
    kept: how many leading tokens lie wholly inside `text` (their log-probs are reported)
    used: how many tokens were generated up to and including the one that ended the row
    """
    if not stops:
        eos = vocab.eos_id
        kept = tokens.index(eos) if eos is not None and eos in tokens else len(tokens)
        return vocab.decode(tokens[:kept]), kept, min(kept + 1, len(tokens))
    row = RowText(vocab, stops)
    for token in tokens:
        if row.add(token):
            break
    return row.final()
