"""Models the generation tests share (no tests here): crafted bigram models whose every
probability is known, and a random-weight LSTM saved as a real checkpoint."""
from __future__ import annotations

import copy
import math

import torch

import seqgen
from seqgen import checkpoint as ckpt
from seqgen.generate import TextGenerator
from seqgen.loaded import LoadedModel
from seqgen.model import LanguageModel, OneHot

FLOOR = 1e-9  # probability of every transition a table leaves out


class Memoryless(seqgen.Cell):
    """Passes its input (the one-hot previous token) through, so the logits depend on the
    previous token alone. Its state is a dummy [1, B, 1] that beams can reorder."""

    def __init__(self, size: int):
        super().__init__()
        self.input_size = self.hidden_size = size

    def initial_state(self, batch_size, device=None):
        return torch.zeros(1, batch_size, 1, device=device)

    def forward(self, x, state=None, lengths=None):
        return x, self.initial_state(x.shape[1]) if state is None else state


def bigram(table: dict[str, dict[str, float]], vocab: seqgen.Vocab) -> LanguageModel:
    """A model with log p(next | previous) = log table[previous][next] (FLOOR if absent)."""
    V = len(vocab)
    model = LanguageModel(V, Memoryless(V), OneHot(V))
    with torch.no_grad():
        model.head.bias.zero_()
        model.head.weight.fill_(math.log(FLOOR))           # [next, previous]
        for prev, row in table.items():
            for nxt, p in row.items():
                model.head.weight[vocab.stoi[nxt], vocab.stoi[prev]] = math.log(p)
    return model


def loaded(model: LanguageModel, vocab: seqgen.Vocab, task: str = "lm") -> LoadedModel:
    """A LoadedModel around any model, as seqgen.load would give (no checkpoint)."""
    return LoadedModel(seqgen.Session(entry_points=False), TextGenerator(model, vocab, task),
                       {}, None)


def logp(table, prev: str, nxt: str) -> float:
    return math.log(table[prev][nxt])


CHARS = "\n abcdefghijklmnopqrstuvwxyz."


def random_checkpoint(path, spec: dict, seed: int = 0) -> str:
    """A random-weight model of `spec` saved as a checkpoint (nothing trained)."""
    session = seqgen.Session(entry_points=False)
    spec = session.resolve(copy.deepcopy(spec))
    vocab = seqgen.Vocab.from_text(CHARS)
    torch.manual_seed(seed)
    model = session.build_model(spec, len(vocab))
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    ckpt.save(path, ckpt.Checkpoint(spec=spec, vocab=vocab, task="lm", tensors=tensors))
    return str(path)
