"""Contract checks for sampler plugins: hold a third-party sampler to the built-ins' tests.

    from seqgen.testing.samplers import check_sampler
    check_sampler(MySampler, TokenStream(torch.arange(500)), options={"batch_size": 4})

Use a small split (hundreds of tokens or sequences): the stream check searches the split
for every row. For a stream, distinct tokens (e.g. `torch.arange(n)`) make every check
exact, since each token then names its position. Each check raises AssertionError
saying what broke; `check_sampler` runs them all.
"""
from __future__ import annotations

from typing import Callable

import torch

from seqgen import Batch, DataError, Sampler, SequenceSet, Split, TokenStream

Factory = Callable[..., Sampler]


def check_sampler(factory: Factory, split: Split, *, options: dict | None = None,
                  seed: int = 0, shuffles: bool = True, world_size: int = 2) -> list[Batch]:
    """Every contract check; returns epoch 0's batches for further checks of your own.

    shuffles: the sampler is random, so other seeds and epochs must give other batches
              (False for a deterministic sampler, e.g. sequential without random_offset).
    world_size: check sharding over this many ranks (1 skips it).
    """
    options = dict(options or {})
    name = getattr(factory, "__name__", repr(factory))
    sampler = factory(split, seed=seed, **options)
    assert sampler.state_rule in ("reset", "carry"), (
        f"{name}.state_rule is {sampler.state_rule!r}; must be 'reset' or 'carry'")
    batches = list(sampler.epoch(0))
    assert isinstance(len(sampler), int) and len(sampler) > 0, (
        f"len({name}) is {len(sampler)!r}; must be a positive int (raise DataError instead)")
    assert len(batches) == len(sampler), (
        f"{name}: len() is {len(sampler)} but epoch 0 yielded {len(batches)} batches")
    for k, batch in enumerate(batches):
        check_batch(batch, f"{name} epoch 0 batch {k}")
    check_deterministic(factory, split, options, seed, name)
    if shuffles:
        check_randomness(factory, split, options, seed, name)
    if isinstance(split, TokenStream):
        check_stream_rows(split, batches, name)
        if sampler.state_rule == "carry":
            check_carry(split, batches, name)
    else:
        check_sequence_rows(split, batches, name)
    if world_size > 1:
        check_sharding(factory, split, options, seed, world_size, name)
    check_too_small(factory, split, options, seed, name)
    return batches


def check_batch(batch: Batch, where: str) -> None:
    """A Batch of time-major [T, B] int64 inputs and targets, lengths [B] int64 in 1..T."""
    assert isinstance(batch, Batch), f"{where}: yielded {type(batch).__name__}, not seqgen.Batch"
    x, y = batch.inputs, batch.targets
    for label, t in (("inputs", x), ("targets", y)):
        assert isinstance(t, torch.Tensor) and t.dtype == torch.int64 and t.dim() == 2, (
            f"{where}: {label} must be a [T, B] int64 tensor, got "
            f"{getattr(t, 'dtype', type(t).__name__)} of shape {tuple(getattr(t, 'shape', ()))}")
    assert x.shape == y.shape and x.numel() > 0, (
        f"{where}: inputs {tuple(x.shape)} and targets {tuple(y.shape)} must be the same, "
        "non-empty [T, B]")
    if batch.lengths is not None:
        n = batch.lengths
        assert n.dtype == torch.int64 and n.shape == (x.shape[1],), (
            f"{where}: lengths must be [B={x.shape[1]}] int64, got {n.dtype} {tuple(n.shape)}")
        assert bool(((n >= 1) & (n <= x.shape[0])).all()), (
            f"{where}: lengths {n.tolist()} must lie in 1..T={x.shape[0]}")


def check_deterministic(factory: Factory, split: Split, options: dict, seed: int,
                        name: str) -> None:
    """epoch(k) depends on (seed, k) only: not on a second call, nor on earlier epochs."""
    first = factory(split, seed=seed, **options)
    again = list(first.epoch(0))
    assert _same(again, list(first.epoch(0))), (
        f"{name}: epoch(0) gave different batches when called twice with the same seed")
    fresh = factory(split, seed=seed, **options)
    assert _same(list(first.epoch(1)), list(fresh.epoch(1))), (
        f"{name}: epoch(1) after epoch(0) differs from epoch(1) of a fresh sampler; batches "
        "must be a pure function of (seed, epoch) so a resumed run sees the same ones "
        "(seed a torch.Generator from both; never use global RNG)")


def check_randomness(factory: Factory, split: Split, options: dict, seed: int,
                     name: str) -> None:
    """Another seed, or another epoch, gives other batches (one in four may collide)."""
    base = list(factory(split, seed=seed, **options).epoch(0))
    others = [list(factory(split, seed=seed + i, **options).epoch(0)) for i in range(1, 5)]
    assert not all(_same(base, o) for o in others), (
        f"{name}: seeds {seed}..{seed + 4} all give the same epoch 0; is the seed ignored? "
        "(pass shuffles=False for a deterministic sampler)")
    sampler = factory(split, seed=seed, **options)
    assert not all(_same(base, list(sampler.epoch(k))) for k in range(1, 5)), (
        f"{name}: epochs 0..4 are identical; each epoch should draw a new order")


def check_stream_rows(split: TokenStream, batches: list[Batch], name: str) -> None:
    """Every row is a run of the stream, its targets the same run shifted by one token."""
    ids = split.ids.to(torch.int64)
    for k, batch in enumerate(batches):
        for b, (x, y) in enumerate(_rows(batch)):
            run = torch.cat([x, y[-1:]])  # [L+1]: inputs then the last target
            windows = ids.unfold(0, len(run), 1)  # [N-L, L+1] every run of that length
            assert bool((windows == run).all(1).any()), (
                f"{name} batch {k} row {b}: inputs {x.tolist()} with targets {y.tolist()} "
                "are not a run of the stream with targets = inputs shifted by one")


def check_carry(split: TokenStream, batches: list[Batch], name: str) -> None:
    """state_rule 'carry': row i of batch k+1 starts where row i of batch k ended."""
    distinct = split.ids.unique().numel() == len(split)
    for k in range(len(batches) - 1):
        a, b = batches[k], batches[k + 1]
        assert a.inputs.shape[1] == b.inputs.shape[1], (
            f"{name}: batch {k} has {a.inputs.shape[1]} rows, batch {k + 1} has "
            f"{b.inputs.shape[1]}; carried state needs the same rows in every batch")
        if distinct:  # a token names its position: next row start = last target
            assert torch.equal(b.inputs[0], a.targets[-1]), (
                f"{name}: batch {k + 1} rows start at {b.inputs[0].tolist()}, but batch {k} "
                f"rows ended before {a.targets[-1].tolist()}; state_rule 'carry' needs "
                "each row to continue the same row of the previous batch")


def check_sequence_rows(split: SequenceSet, batches: list[Batch], name: str) -> None:
    """Every row (up to its length) is one of the split's (inputs, targets) sequences."""
    known = {(tuple(x.tolist()), tuple(y.tolist())) for x, y in zip(split.inputs, split.targets)}
    for k, batch in enumerate(batches):
        for b, (x, y) in enumerate(_rows(batch)):
            assert (tuple(x.tolist()), tuple(y.tolist())) in known, (
                f"{name} batch {k} row {b}: {x.tolist()} -> {y.tolist()} (up to its length) "
                "is not a sequence of the split")


def check_sharding(factory: Factory, split: Split, options: dict, seed: int,
                   world_size: int, name: str) -> None:
    """Ranks take the same number of steps, and batch k over all ranks is exactly batch k
    of a single process (disjoint shards whose union is the whole). A single-process
    batch with fewer rows than world_size cannot be shared: ranks may skip it."""
    whole = [b for b in factory(split, seed=seed, **options).epoch(0)
             if b.inputs.shape[1] >= world_size]
    shards = []
    for rank in range(world_size):
        try:
            sampler = factory(split, seed=seed, rank=rank, world_size=world_size, **options)
        except DataError as e:
            raise AssertionError(f"{name}: rank {rank} of {world_size} raised DataError: {e} "
                                 "(give options that fit, or world_size=1 to skip)") from e
        shards.append(list(sampler.epoch(0)))
    for rank, shard in enumerate(shards):
        assert len(shard) == len(whole), (
            f"{name}: rank {rank} of {world_size} yields {len(shard)} batches, a single "
            f"process {len(whole)} with at least {world_size} rows; every rank must take "
            "the same number of steps")
    for k, batch in enumerate(whole):
        parts = [_row_keys(shard[k]) for shard in shards]
        assert sorted(sum(parts, [])) == sorted(_row_keys(batch)), (
            f"{name}: batch {k} over {world_size} ranks (rows per rank "
            f"{[len(p) for p in parts]}) is not the single-process batch of "
            f"{batch.inputs.shape[1]} rows; shards must be disjoint and cover it")


def check_too_small(factory: Factory, split: Split, options: dict, seed: int,
                    name: str) -> None:
    """Data too small for one batch raises DataError from the constructor, never yields
    an empty epoch."""
    tiny = TokenStream(split.ids[:1]) if isinstance(split, TokenStream) else SequenceSet([], [])
    try:
        factory(tiny, seed=seed, **options)
    except DataError:
        return
    raise AssertionError(f"{name}: a split of {len(tiny)} item(s) built a sampler; raise "
                         "seqgen.DataError from the constructor saying how much data one "
                         "batch needs")


def _rows(batch: Batch):
    """(inputs [L], targets [L]) of each row, cut to its length."""
    T = batch.inputs.shape[0]
    lengths = batch.lengths.tolist() if batch.lengths is not None else [T] * batch.inputs.shape[1]
    for b, n in enumerate(lengths):
        yield batch.inputs[:n, b], batch.targets[:n, b]


def _row_keys(batch: Batch) -> list[tuple]:
    return [(tuple(x.tolist()), tuple(y.tolist())) for x, y in _rows(batch)]


def _same(a: list[Batch], b: list[Batch]) -> bool:
    def same(p: Batch, q: Batch) -> bool:
        lengths_equal = (p.lengths is None and q.lengths is None) or (
            p.lengths is not None and q.lengths is not None and torch.equal(p.lengths, q.lengths))
        return (p.inputs.shape == q.inputs.shape and torch.equal(p.inputs, q.inputs)
                and torch.equal(p.targets, q.targets) and lengths_equal)
    return len(a) == len(b) and all(same(p, q) for p, q in zip(a, b))
