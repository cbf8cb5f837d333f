"""Building a SequenceSet from token-id sequences (shared by "lines" and "pairs")."""
from __future__ import annotations

import torch

from seqgen import SequenceSet


def split_ids(ids: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Cut one encoded run [sum(sizes)] back into sequences (views, no copies)."""
    return list(ids.split(sizes))


def with_bos_eos(seqs: list[torch.Tensor], bos: int, eos: int) -> SequenceSet:
    """Next-token pairs per sequence: inputs [<bos>]+seq, targets seq+[<eos>], each [T+1]."""
    dtype = seqs[0].dtype
    b, e = torch.tensor([bos], dtype=dtype), torch.tensor([eos], dtype=dtype)
    return SequenceSet([torch.cat([b, s]) for s in seqs], [torch.cat([s, e]) for s in seqs])


def tail(split: SequenceSet, n_train: int) -> tuple[SequenceSet, SequenceSet | None]:
    """The first n_train sequences, and the rest (None when there is no rest)."""
    train = SequenceSet(split.inputs[:n_train], split.targets[:n_train])
    if n_train == len(split):
        return train, None
    return train, SequenceSet(split.inputs[n_train:], split.targets[n_train:])
