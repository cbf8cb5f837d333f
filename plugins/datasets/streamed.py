"""The "text" dataset with `cache: true`: a corpus larger than memory.

The files are streamed in pieces, twice, and never held whole:
    pass 1  the vocabulary (characters seen, or word counts) and a hash of the bytes;
    pass 2  the ids, written in the smallest integer dtype to a token cache
            (seqgen.TokenCache: ids.bin + manifest.json), which the splits then
            memory-map. A second run on the unchanged corpus skips both passes.

Every piece goes through the in-memory pipeline's steps (text.py: clean, max_chars,
newlines, lowercase, then characters or words), so the vocabulary and ids are exactly
those of `cache: false`. For characters without `clean` a piece may end anywhere; for
words or `clean: d2l` pieces end at a line end, where those steps can cut the text
without changing it, and a word cut by a piece's end (d2l joins lines with nothing) is
carried into the next. A line longer than MAX_LINE characters is cut at its last
whitespace unless `clean: d2l` needs it whole; only a word `pattern` whose matches can
span whitespace could then split differently.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import Iterator

from seqgen import UNK, DataError, TokenCache, Vocab, read_text_chunks

from .tokens import encode_words, split_words, vocab_from_counts

D2L_NON_LETTERS = re.compile("[^A-Za-z]+")
LAST_SPACE = re.compile(r"\s(?=\S*\Z)")
MAX_LINE = 1 << 26            # characters buffered while looking for a line end
WORD_PART = 1 << 21           # characters split into words at a time


def cached_corpus(files: list[Path], source: str, cache_dir: str | None, *, level: str,
                  pattern: str | None, min_freq: int, lowercase: bool, newlines: str,
                  clean: str, max_chars: int | None) -> tuple[Vocab, object, dict]:
    """(vocab, ids [N] memory-mapped, info) of the corpus in `files`, from the cache when
    it is current, else encoded into it."""
    options = {"level": level, "pattern": pattern, "min_freq": min_freq,
               "lowercase": lowercase, "newlines": newlines, "clean": clean,
               "max_chars": max_chars}
    directory = Path(cache_dir) if cache_dir else files[0].parent / ".seqgen-cache"
    cache = TokenCache(directory, files[0].stem or "corpus", files, options)
    found = cache.load()
    if found is not None:
        return found

    def pieces(digest=None) -> Iterator[str]:
        return corpus_pieces(files, clean, max_chars, newlines, lowercase,
                             words=level == "word", digest=digest)

    digest = hashlib.sha256()
    if level == "char":
        seen, chars = set(), 0
        for piece in pieces(digest):
            seen.update(Vocab.from_text(piece).tokens)      # a vectorised scan per piece
            chars += len(piece)
        vocab = Vocab(seen, level="char", lowercase=lowercase)
        ids = (vocab.encode(piece).numpy() for piece in pieces())
    else:
        counts, chars = Counter(), 0
        for piece in pieces(digest):
            for part in _word_parts(piece):
                counts.update(split_words(part, pattern))
            chars += len(piece)
        if not counts:
            raise DataError(f"{source}: no words found"
                            + (f" matching {pattern!r}" if pattern else ""))
        vocab = vocab_from_counts(counts, min_freq, specials=[UNK], pattern=pattern,
                                  lowercase=lowercase)
        ids = (encode_words(vocab, split_words(part, pattern)).numpy()
               for piece in pieces() for part in _word_parts(piece))
    if chars == 0:
        raise DataError(f"{source}: empty corpus")
    vocab.newlines = newlines
    return cache.store(vocab, ids, {"characters": chars}, corpus_hash=digest.hexdigest())


def corpus_pieces(files: list[Path], clean: str, max_chars: int | None, newlines: str,
                  lowercase: bool, words: bool, digest=None) -> Iterator[str]:
    """The text the in-memory pipeline makes from `files`, in pieces (see the module
    docstring): files joined with a newline where one lacks it, then clean, max_chars,
    newlines and lowercase."""
    left, carry = max_chars, ""
    texts = _joined(files, digest)
    if words or clean == "d2l":     # characters alone may be cut anywhere
        texts = _line_pieces(texts, whole_lines=clean == "d2l", words=words)
    for piece in texts:
        if clean == "d2l":
            piece = "".join(D2L_NON_LETTERS.sub(" ", line).strip().lower()
                            for line in piece.splitlines())
        if left is not None:
            piece = piece[:left]
            left -= len(piece)
        if newlines == "space":
            piece = piece.replace("\n", " ")
        if lowercase:
            piece = piece.lower()
        if words:   # d2l joins lines with nothing: a word may go on in the next piece
            piece = carry + piece
            end = _after_last_space(piece)
            if end == 0 and len(piece) <= MAX_LINE and left != 0:
                carry = piece
                continue
            piece, carry = (piece[:end], piece[end:]) if end else (piece, "")
        if piece:
            yield piece
        if left == 0:
            break
    if carry:
        yield carry


def _word_parts(piece: str, size: int | None = None) -> Iterator[str]:
    """`piece` in parts of about `size` characters, each cut after a space, newline or
    tab (a list of words costs some 60 bytes a word: 16 MB of text would hold 150 MB of
    them); a stretch of `size` without one stays whole."""
    size, start = size or WORD_PART, 0
    while len(piece) - start > size:
        stop = start + size
        cut = max(piece.rfind(" ", start, stop), piece.rfind("\n", start, stop),
                  piece.rfind("\t", start, stop)) + 1
        if cut <= start:
            break
        yield piece[start:cut]
        start = cut
    yield piece[start:] if start else piece


def _after_last_space(text: str) -> int:
    """An index just past a whitespace character of `text`, as late as cheaply found (a
    word never straddles it), or 0 when there is none."""
    end = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t")) + 1
    if end:
        return end
    match = LAST_SPACE.search(text)          # rarer whitespace only: a slower scan
    return match.end() if match else 0


def _joined(files: list[Path], digest) -> Iterator[str]:
    """The files' text in order, a newline between two where the first lacks one."""
    last = ""
    for f in files:
        first = True
        for text in read_text_chunks(f, digest=digest):
            if first and last and last != "\n":
                yield "\n"
            first, last = False, text[-1]
            yield text


def _line_pieces(texts: Iterator[str], whole_lines: bool, words: bool) -> Iterator[str]:
    """Re-cut `texts` so each piece ends at a line end (the last piece: at the end)."""
    buffer = ""
    for text in texts:
        buffer += text
        cut = buffer.rfind("\n") + 1
        if cut == 0 and len(buffer) > MAX_LINE and not whole_lines:
            cut = (max(buffer.rfind(" "), buffer.rfind("\t")) + 1 if words else 0) or len(buffer)
        if cut:
            yield buffer[:cut]
            buffer = buffer[cut:]
    if buffer:
        yield buffer
