"""The "reversal" dataset: a seq2seq task that needs no file, the quickstart for
encoder-decoder models.

Each source is a random string over a small `alphabet` ("cfbad"); its target is the
string reversed ("dabfc"), or with `transform` sorted ("abcdf") or copied as it is. Lengths
are uniform in min_length..max_length. Character level, one vocabulary for both sides:
<pad>, <bos>, <eos>, then the alphabet. Generated with a torch.Generator seeded from
`seed` alone (never the global RNG), so the same options give the same pairs everywhere.
The tail `valid_fraction` of the pairs validates.
"""
from __future__ import annotations

import torch

from seqgen import BOS, EOS, PAD, DataError, Dataset, PairSet, Vocab, smallest_int_dtype

from .options import valid_fraction_option
from .sequences import split_ids
from .translation import pair_splits, split_info

TRANSFORMS = {"reverse": lambda ids: ids.flip(0), "sort": lambda ids: ids.sort().values,
              "copy": lambda ids: ids}
REVERSAL_SCHEMA = {
    "type": "object",
    "properties": {
        "transform": {"enum": list(TRANSFORMS), "default": "reverse",
                      "description": "What the target is: the source reversed, its "
                                     "characters sorted, or the source copied."},
        "alphabet": {"type": "string", "minLength": 1, "default": "abcdefgh",
                     "description": "The characters strings are drawn from (distinct)."},
        "min_length": {"type": "integer", "minimum": 1, "default": 3,
                       "description": "Shortest source, in characters."},
        "max_length": {"type": "integer", "minimum": 1, "default": 8,
                       "description": "Longest source, in characters (at least min_length)."},
        "size": {"type": "integer", "minimum": 2, "default": 2000,
                 "description": "Number of pairs, training and validation together."},
        "seed": {"type": "integer", "minimum": 0, "default": 0,
                 "description": "Seed of the string generator (independent of the run seed)."},
        "valid_fraction": valid_fraction_option(0.1),
    },
}
DESCRIPTION = ("Random strings and their reversal (or sorted, or copied); needs no file "
               "(task seq2seq).")


def build_reversal(transform="reverse", alphabet="abcdefgh", min_length=3, max_length=8,
                   size=2000, seed=0, valid_fraction=0.1) -> Dataset:
    if transform not in TRANSFORMS:
        raise DataError(f"reversal dataset: unknown transform {transform!r}; use "
                        + ", ".join(repr(t) for t in TRANSFORMS))
    twice = sorted({c for c in alphabet if alphabet.count(c) > 1})
    if not alphabet or twice:
        raise DataError(f"reversal dataset: the alphabet {alphabet!r} must be non-empty "
                        "characters, each once" + (f"; {twice[0]!r} repeats" if twice else ""))
    if not 1 <= min_length <= max_length:
        raise DataError(f"reversal dataset: need 1 <= min_length ({min_length}) <= "
                        f"max_length ({max_length})")
    vocab = Vocab(list(alphabet), level="char", specials=(PAD, BOS, EOS))

    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, max_length + 1, (size,), generator=generator)
    letters = torch.randint(len(alphabet), (int(lengths.sum()),), generator=generator)
    ids_of = torch.tensor([vocab.id(c) for c in alphabet], dtype=smallest_int_dtype(len(vocab)))
    sources = split_ids(ids_of[letters], lengths.tolist())
    eos = torch.tensor([vocab.eos_id], dtype=ids_of.dtype)
    targets = [torch.cat([TRANSFORMS[transform](s), eos]) for s in sources]

    source = f"reversal: {transform} strings over {alphabet!r} (seed {seed})"
    train, valid = pair_splits(PairSet(sources, targets, bos_id=vocab.bos_id), valid_fraction, source)
    info = {"pairs": size, **split_info(train, valid), "vocab_size": len(vocab),
            "transform": transform}
    return Dataset(vocab=vocab, task="seq2seq", train=train, valid=valid, source=source,
                   info=info)
