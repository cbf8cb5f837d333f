"""What samplers yield and the trainer consumes."""
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
    """One training batch, time-major.

    inputs:  [T, B] int64 token ids fed to the model
    targets: [T, B] int64 ids the model must predict at each position
    lengths: [B] int64 (CPU) valid steps per row, or None when every row has all T steps.
             Positions at or past a row's length are padding and never count in the loss.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor | None = None

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
        return Batch(self.inputs.to(device), self.targets.to(device), self.lengths)


class Sampler:
    """Base class for sampler plugins: turns one split's data into batches.

    `state_rule` tells the trainer what to do with the recurrent state between batches;
    the trainer reads it and has no per-sampler branch. `epoch(k)` must be a pure
    function of the sampler's seed and `k`, so a resumed run sees the same batches.
    """

    state_rule: StateRule = "reset"

    def __len__(self) -> int:
        """Batches per epoch: the same for every epoch, and for every rank when sharded
        (so all processes take the same number of steps). Never zero: raise DataError
        from the constructor when the data is too small for one batch."""
        raise NotImplementedError

    def epoch(self, epoch: int) -> Iterator[Batch]:
        raise NotImplementedError
