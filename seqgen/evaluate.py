"""Scoring a whole split: mean negative log-likelihood per token, and perplexity."""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F

from .batch import Batch
from .data import PairSet, SequenceSet, Split, TokenStream
from .distributed import World
from .model import LanguageModel


def token_nll(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per-position negative log-likelihood [T, B]; zero at padded positions."""
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                          batch.targets.reshape(-1).long(), reduction="none")
    nll = nll.view(batch.targets.shape)
    mask = batch.mask
    return nll if mask is None else nll * mask


def stream_chunks(ids: torch.Tensor, max_rows: int, chunk: int) -> Iterator[Batch]:
    """Cut a stream into R contiguous rows ([T, R] per chunk), read left to right.

    R is at most `max_rows` and small enough that each row has >= `chunk` tokens, so
    little context is lost at row starts. Every target token is scored exactly once,
    except the remainder that does not fill a row (fewer than R tokens).
    """
    n = ids.numel() - 1                                    # targets available
    rows = max(1, min(max_rows, n // chunk))
    length = n // rows
    x = ids[: rows * length].view(rows, length).t()          # [L, R]
    y = ids[1: rows * length + 1].view(rows, length).t()
    for start in range(0, length, chunk):
        yield Batch(x[start:start + chunk].long(), y[start:start + chunk].long())


def sequence_batches(split: SequenceSet, batch_size: int) -> Iterator[Batch]:
    """Padded batches of sequences in length order (state reset for each batch)."""
    order = sorted(range(len(split)), key=lambda i: len(split.inputs[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        lengths = torch.tensor([len(split.inputs[i]) for i in idx])
        steps = int(lengths.max())
        x = torch.zeros(steps, len(idx), dtype=torch.long)
        y = torch.zeros(steps, len(idx), dtype=torch.long)
        for col, i in enumerate(idx):
            x[: lengths[col], col] = split.inputs[i].long()
            y[: lengths[col], col] = split.targets[i].long()
        yield Batch(x, y, lengths)


def pair_batches(split: PairSet, batch_size: int) -> Iterator[Batch]:
    """Padded seq2seq batches (PairSet.batch) in source-length order."""
    order = sorted(range(len(split)), key=lambda i: (len(split.sources[i]), len(split.targets[i])))
    for start in range(0, len(order), batch_size):
        yield split.batch(order[start:start + batch_size])


def batch_logits(model, batch: Batch) -> torch.Tensor:
    """Teacher-forced logits [T, B, V] of a padded batch from a fresh state (a seq2seq
    batch: from its source's encoding)."""
    state = None if batch.source is None else model.encode(batch.source, batch.source_lengths)
    return model(batch.inputs, state, batch.lengths)[0]


def padded_batches(split: SequenceSet | PairSet, batch_size: int) -> Iterator[Batch]:
    return (pair_batches if isinstance(split, PairSet) else sequence_batches)(split, batch_size)


@torch.no_grad()
def mean_nll(model: LanguageModel, split: Split, device, max_rows: int = 16,
             chunk: int = 256, world: World = World()) -> float:
    """Mean NLL per token, in nats, over a whole split.

    With several ranks the work is shared and the sums added up: each rank scores its
    rows of a stream (rank r: rows r, r+W, ...) or its batches of sequences (r, r+W, ...),
    so the result is the single-process one up to float rounding."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        if isinstance(split, TokenStream):
            state = None
            for batch in stream_chunks(split.ids, max_rows, chunk):
                batch = batch.to(device)
                if world.distributed:
                    batch = Batch(world.mine(batch.inputs), world.mine(batch.targets))
                    if batch.inputs.shape[1] == 0:      # fewer rows than ranks
                        continue
                logits, state = model(batch.inputs, state)
                total += float(token_nll(logits, batch).sum())
                count += batch.num_tokens
        else:
            for index, batch in enumerate(padded_batches(split, 64)):
                if index % world.size != world.rank:
                    continue
                batch = batch.to(device)
                logits = batch_logits(model, batch)
                total += float(token_nll(logits, batch).sum())
                count += batch.num_tokens
    finally:
        model.train(was_training)
    total, count = world.sum([total, count])
    return total / max(count, 1)


def perplexity(nll: float) -> float:
    """exp(mean NLL), capped to stay finite in JSON."""
    return math.exp(min(nll, 700.0))
