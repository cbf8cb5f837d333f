"""What dataset plugins return and sampler plugins consume: `Dataset`, made of a `Vocab`,
a task and splits, each a `TokenStream` or a `SequenceSet` (read their docstrings).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

import torch
from torch.nn.utils.rnn import pad_sequence

from .batch import Batch
from .vocab import Vocab

Task = Literal["lm", "lines", "aligned", "seq2seq"]
TASKS = ("lm", "lines", "aligned", "seq2seq")
CAUSAL_TASKS = ("lm", "lines")


@dataclass
class TokenStream:
    """A split that is one long run of token ids: language modelling on a corpus.

    ids: [N] the ids in order, of an integer dtype (the smallest that fits the
         vocabulary, `seqgen.smallest_int_dtype`, keeps a large corpus small), each in
         0..len(vocab)-1. Samplers cut windows from it; the targets of a window are the
         same positions shifted by one token, so a window of T steps needs T+1 ids.
    """

    ids: torch.Tensor  # [N], the smallest integer dtype that fits the vocabulary
    kind = "stream"

    def __len__(self) -> int:
        return int(self.ids.numel())


@dataclass
class SequenceSet:
    """A split of separate sequences, each an (inputs, targets) pair of equal length.

    inputs[i], targets[i]: [T_i] integer ids, T_i >= 1, ids in 0..len(vocab)-1.
    For the "lines" task targets are the inputs shifted by one (inputs [<bos>] + line,
    targets line + [<eos>]); for "aligned" they are any mapping of equal length (hello ->
    ohlol). Samplers pad them into batches.
    """

    inputs: list[torch.Tensor]   # each [T_i]
    targets: list[torch.Tensor]  # each [T_i], same length as its input
    kind = "sequences"

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass
class PairSet:
    """A split of (source, target) pairs of any lengths: the "seq2seq" task (translation).

    sources[i]: [S_i] integer ids in the dataset's `source_vocab`, S_i >= 1, no markers.
    targets[i]: [T_i] integer ids in its `vocab`: the target's tokens then <eos>
                (T_i >= 1). The decoder reads <bos> then targets[i][:-1] and must
                predict targets[i] (`PairSet.decoder_inputs` makes that input).

    bos_id: the target vocabulary's <bos> id, which the decoder's input starts with.
    """

    sources: list[torch.Tensor]  # each [S_i]
    targets: list[torch.Tensor]  # each [T_i], ending in <eos>
    bos_id: int
    kind = "pairs"

    def __len__(self) -> int:
        return len(self.sources)

    def decoder_inputs(self, i: int) -> torch.Tensor:
        """What the decoder reads for pair i [T_i]: <bos>, then targets[i][:-1]."""
        target = self.targets[i]
        return torch.cat([torch.tensor([self.bos_id], dtype=target.dtype), target[:-1]])

    def batch(self, index: list[int]) -> Batch:
        """Pairs `index` as one time-major Batch, 0-padded: source [S, b] with
        source_lengths, the decoder's input (<bos> + target) and the target [T, b] with
        lengths (what samplers yield and evaluation reads)."""
        return Batch(pad_sequence([self.decoder_inputs(i) for i in index]).long(),
                     pad_sequence([self.targets[i] for i in index]).long(),
                     torch.tensor([len(self.targets[i]) for i in index]),
                     pad_sequence([self.sources[i] for i in index]).long(),
                     torch.tensor([len(self.sources[i]) for i in index]))


#: One split of a dataset: its shape says which samplers can batch it.
Split = Union[TokenStream, SequenceSet, PairSet]


@dataclass
class Dataset:
    """What a dataset factory returns: token ids, the vocabulary that maps them to text,
    and the task they pose.

    A dataset factory is registered with `register_datasets` (with its `task=` extra):
    `factory(**options)` returns a Dataset. Hold it to this contract with
    `seqgen.testing.check_dataset`.

    vocab:  the `seqgen.Vocab`, saved with the model. It must be deterministic: the same
            options give the same tokens in the same order in every process and run
            (Vocab sorts its tokens; never build one from `list(set(...))` order), and
            decoding ids then encoding the text gives the ids back, so prompts are
            tokenised as the training text was.
    task:   what a model trained on it can do, one of TASKS:
              "lm":      next-token prediction over a TokenStream; generation works;
                         causal cells only
              "lines":   next-token prediction per sequence (a SequenceSet, with <bos>
                         and <eos> in the vocabulary); generation stops at <eos>; causal
                         cells only
              "aligned": input -> target mapping of equal length (a SequenceSet); every
                         output may see the whole input, so bidirectional cells are
                         allowed; no free generation
              "seq2seq": source -> target of any lengths (a PairSet) for an
                         encoder-decoder model: `source_vocab` reads sources, `vocab`
                         (with <bos>, <eos> and <pad>) targets; decoding is conditioned
                         on a source
    train:  the training split, non-empty: a TokenStream for "lm", a SequenceSet else.
    valid:  the validation split, of the same shape, or None for none.
    source: where the data came from, for messages ("corpus.txt", "3 files").
    info:   anything worth printing (sizes, ...), JSON-able.
    source_vocab: "seq2seq" only: the vocabulary of the sources, or None when sources
            and targets share `vocab`.

    Data that cannot make a dataset (missing, undecodable, too small) raises
    `seqgen.DataError` saying what to change.
    """

    vocab: Vocab
    task: Task
    train: Split
    valid: Split | None = None
    source: str = ""                 # where the data came from, for messages
    info: dict = field(default_factory=dict)  # anything worth printing (sizes, ...)
    source_vocab: Vocab | None = None        # seq2seq: the sources' own vocabulary

    @property
    def input_vocab(self) -> Vocab:
        """The vocabulary the model's input (a seq2seq model's source) is read with."""
        return self.source_vocab if self.source_vocab is not None else self.vocab

    @property
    def causal(self) -> bool:
        """True for tasks where a position may only see the tokens before it."""
        return self.task in CAUSAL_TASKS
