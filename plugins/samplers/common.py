"""What every built-in sampler shares: per-epoch randomness, sharding, input checks."""
from __future__ import annotations

import numpy as np
import torch

from seqgen import DataError

BATCH_OPTIONS = {
    "batch_size": {"type": "integer", "minimum": 1, "default": 32,
                   "description": "Rows per batch, over all processes together "
                                  "(each of world_size processes gets about 1/world_size)."},
}
STREAM_OPTIONS = {
    **BATCH_OPTIONS,
    "num_steps": {"type": "integer", "minimum": 1, "default": 35,
                  "description": "Time steps per batch (T): each row is T inputs whose "
                                 "targets are the next T tokens."},
}


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator that depends only on (seed, epoch): never on global RNG or on which
    epochs ran before, so a resumed run sees exactly the batches it would have seen.
    SeedSequence mixes the pair so that nearby seeds and epochs give unrelated streams."""
    state = np.random.SeedSequence([seed % 2**63, epoch % 2**63]).generate_state(1, np.uint64)
    return torch.Generator().manual_seed(int(state[0]))


def shard_rows(batch_size: int, rank: int, world_size: int, name: str) -> slice:
    """The rows of every global batch that `rank` gets: rank, rank+W, rank+2W, ...

    Sharding rows (not batches) keeps the same number of batches on every rank, and a
    row keeps its rank from batch to batch, which carried state needs."""
    if not 0 <= rank < world_size:
        raise DataError(f"{name} sampler: rank {rank} is outside 0..{world_size - 1}")
    if batch_size < world_size:
        raise DataError(f"{name} sampler: batch_size {batch_size} is smaller than "
                        f"world_size {world_size}; every process needs at least one row")
    return slice(rank, None, world_size)


SHAPES = {"stream": "a TokenStream", "sequences": "a SequenceSet", "pairs": "a PairSet"}


def require_split(split, kinds: str | tuple[str, ...], name: str) -> None:
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    if getattr(split, "kind", None) not in kinds:
        shape = " or ".join(f"{SHAPES[k]} ({k})" for k in kinds)
        raise DataError(f"{name} sampler needs {shape}; got "
                        f"{getattr(split, 'kind', type(split).__name__)}")


def too_small(name: str, need: int, have: int, batch_size: int, num_steps: int,
              max_offset: int) -> DataError:
    offset = f" at a random offset of up to {max_offset}" if max_offset else ""
    return DataError(f"{name} sampler: needs at least {need} tokens for one batch of "
                     f"{batch_size} x ({num_steps}+1){offset}, has {have}; "
                     "lower batch_size or num_steps, or use more text")
