"""What sampler plugins are and yield: `Sampler` and `Batch` (read their docstrings)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

import torch

# How the trainer treats the recurrent state between two batches of one epoch.
#   "reset": start every batch from the initial state (random sampling, independent rows)
#   "carry": start from the previous batch's final state, detached (adjacent sampling)
StateRule = Literal["reset", "carry"]


@dataclass
class Batch:
    """One training batch, time-major: what a `Sampler` yields and the trainer consumes.

    inputs:  [T, B] int64 token ids fed to the model
    targets: [T, B] int64 ids the model must predict at each position
    lengths: [B] int64 (CPU) valid steps per row, or None when every row has all T steps.
             Positions at or past a row's length are padding and never count in the loss.
    source:  [S, B] int64 source ids (seq2seq batches only, padded with 0), or None. The
             model encodes it and decodes `inputs` (<bos> + target) conditioned on it.
    source_lengths: [B] int64 (CPU) real source positions per row (with `source`).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor | None = None
    source: torch.Tensor | None = None
    source_lengths: torch.Tensor | None = None

    @property
    def mask(self) -> torch.Tensor | None:
        """[T, B] bool, True where a position is real (None when nothing is padded)."""
        if self.lengths is None:
            return None
        steps = torch.arange(self.inputs.shape[0]).unsqueeze(1)  # [T, 1]
        return (steps < self.lengths.unsqueeze(0)).to(self.inputs.device)

    @property
    def num_tokens(self) -> int:
        """Number of real (non-padding) target positions."""
        if self.lengths is None:
            return self.targets.numel()
        return int(self.lengths.sum())

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.inputs.to(device), self.targets.to(device), self.lengths,
                     None if self.source is None else self.source.to(device),
                     self.source_lengths)


class Sampler:
    """Base class for sampler plugins: turns one split's data into batches.

    A sampler factory is registered with `register_samplers` (with its `accepts=` extra,
    "stream" or "sequences"): `factory(split, *, seed, rank=0, world_size=1, **options)`
    returns a Sampler over that `seqgen.Split`. Hold it to this contract with
    `seqgen.testing.check_sampler`.

    - `epoch(k)` yields the batches of epoch k (0-based), each a `seqgen.Batch`: [T, B]
      int64 inputs and targets, and `lengths` when rows are padded. It must be a pure
      function of the sampler's seed and `k` (seed a torch.Generator from both; never
      use the global RNG), so a resumed run sees the same batches.
    - Every row is real data: for a TokenStream a run of the stream with targets the
      same run shifted by one token, for a SequenceSet one of its (inputs, targets)
      pairs, cut to its length.
    - `len(sampler)` is the number of batches per epoch: the same every epoch, never
      zero. Data too small for one batch raises `seqgen.DataError` from the constructor,
      saying how much one batch needs.
    - `state_rule` tells the trainer what to do with the recurrent state between
      batches; the trainer reads it and has no per-sampler branch. "reset": each batch
      starts from the initial state (independent rows). "carry": row i of batch k+1
      continues row i of batch k, and every batch has the same rows.
    - Sharding: `batch_size` is the global batch. Rank r of world_size takes its own rows
      of every global batch (disjoint, together the whole batch), every rank yields the
      same number of batches, and with (rank=0, world_size=1) a sampler yields the whole
      global batch.
    """

    state_rule: StateRule = "reset"

    def __len__(self) -> int:
        """Batches per epoch: the same for every epoch, and for every rank when sharded
        (so all processes take the same number of steps). Never zero: raise DataError
        from the constructor when the data is too small for one batch."""
        raise NotImplementedError

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """The batches of epoch `epoch` (0-based), a pure function of (seed, epoch)."""
        raise NotImplementedError
