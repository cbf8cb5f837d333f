"""Validation split: the contiguous tail, so validation text is never seen in training."""
from __future__ import annotations

from seqgen import DataError


def train_size(n: int, valid_fraction: float, what: str, source: str) -> int:
    """How many of `n` items (tokens, lines, pairs) train; the rest validate.

    valid_fraction 0 means no validation split (returns n). Otherwise both parts must be
    non-empty: a fraction that rounds to nothing is an error, not a silent no-op.
    """
    if valid_fraction <= 0:
        return n
    n_valid = int(n * valid_fraction)
    if n_valid == 0 or n_valid >= n:
        raise DataError(f"{source}: valid_fraction {valid_fraction} of {n} {what} leaves "
                        f"{'no validation' if n_valid == 0 else 'no training'} {what}; "
                        "use more data or change valid_fraction (0 = no validation split)")
    return n - n_valid
