"""What dataset plugins return and sampler plugins consume.

A dataset factory returns a `Dataset`: a vocabulary, a task, and a train and an optional
validation split. A split is one of two shapes:

- `TokenStream`: one long run of token ids (language modelling on a corpus). Targets are
  the inputs shifted by one; samplers cut windows from it.
- `SequenceSet`: separate sequences, each an (inputs, targets) pair of equal length
  (lines with <bos>/<eos>, or aligned pairs such as hello->ohlol). Samplers pad them.

The task tells the core what a model trained on it can do:
  "lm":      next-token prediction over a stream; generation works; causal cells only
  "lines":   next-token prediction per sequence; generation stops at <eos>; causal only
  "aligned": input->target mapping of equal length; every output may see the whole
             input, so bidirectional cells are allowed; no free generation
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

import torch

from .vocab import Vocab

Task = Literal["lm", "lines", "aligned"]
TASKS = ("lm", "lines", "aligned")
CAUSAL_TASKS = ("lm", "lines")


@dataclass
class TokenStream:
    ids: torch.Tensor  # [N], the smallest integer dtype that fits the vocabulary
    kind = "stream"

    def __len__(self) -> int:
        return int(self.ids.numel())


@dataclass
class SequenceSet:
    inputs: list[torch.Tensor]   # each [T_i]
    targets: list[torch.Tensor]  # each [T_i], same length as its input
    kind = "sequences"

    def __len__(self) -> int:
        return len(self.inputs)


Split = Union[TokenStream, SequenceSet]


@dataclass
class Dataset:
    vocab: Vocab
    task: Task
    train: Split
    valid: Split | None = None
    source: str = ""                 # where the data came from, for messages
    info: dict = field(default_factory=dict)  # anything worth printing (sizes, ...)

    @property
    def causal(self) -> bool:
        return self.task in CAUSAL_TASKS
