"""The "lines" dataset: one sequence per line (names, poems), task "lines".

The lines come from UTF-8 files (`path`, `paths`) or from a string (`text`), alike.
Each non-empty line is a sequence; inputs are [<bos>] + line and targets line + [<eos>],
so a model learns where lines start and end and generation stops at <eos>. The
vocabulary holds <pad> (id 0, what samplers pad with), <bos>, <eos> and, at word level,
<unk>. Empty and whitespace-only lines are skipped. The tail `valid_fraction` of the
lines validates.
"""
from __future__ import annotations

from seqgen import BOS, EOS, PAD, DataError, Dataset, Vocab

from .files import load
from .options import LEVEL_OPTIONS, SOURCE_OPTIONS, SOURCES, one_of, valid_fraction_option
from .sequences import split_ids, tail, with_bos_eos
from .splits import train_size
from .tokens import encode_words, split_words, word_vocab

LINES_SCHEMA = {
    "type": "object",
    "properties": {**SOURCE_OPTIONS, **LEVEL_OPTIONS,
                   "valid_fraction": valid_fraction_option(0.1)},
    **one_of(SOURCES),
}
DESCRIPTION = ("One sequence per line of UTF-8 files or a string (names, poems), with "
               "<bos>/<eos> (task lines).")
SPECIALS = (PAD, BOS, EOS)


def build_lines_dataset(path=None, paths=None, text=None, level="char", pattern=None,
                        min_freq=1, lowercase=False, valid_fraction=0.1) -> Dataset:
    text, source, files = load(path, paths, text)
    if lowercase:
        text = text.lower()
    lines = [line for line in text.split("\n") if line.strip()]

    if level == "char":
        joined = "".join(lines)  # encode all lines in one vectorised call, then cut
        vocab = Vocab.from_text(joined, specials=SPECIALS)
        seqs = split_ids(vocab.encode(joined), [len(line) for line in lines])
        vocab.lowercase = lowercase          # prompts get the same preprocessing
    else:
        words = [w for w in (split_words(line, pattern) for line in lines) if w]
        vocab = word_vocab([w for ws in words for w in ws], min_freq, specials=SPECIALS,
                           pattern=pattern, lowercase=lowercase)
        flat = encode_words(vocab, [w for ws in words for w in ws])
        seqs = split_ids(flat, [len(ws) for ws in words])
    if not seqs:
        raise DataError(f"{source}: no non-empty lines"
                        + (f" with words matching {pattern!r}" if pattern else ""))

    data = with_bos_eos(seqs, vocab.bos_id, vocab.eos_id)
    train, valid = tail(data, train_size(len(data), valid_fraction, "lines", source))
    info = {"files": files, "lines": len(data), "train_lines": len(train),
            "valid_lines": len(valid) if valid else 0, "vocab_size": len(vocab),
            "longest": max(len(s) for s in seqs)}
    return Dataset(vocab=vocab, task="lines", train=train, valid=valid, source=source,
                   info=info)
