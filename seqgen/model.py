"""The model around a cell: token ids -> input vectors -> cell -> vocabulary logits.

    ids [T, B] --embed--> x [T, B, E] --cell--> h [T, B, H*D] --head--> logits [T, B, V]

The embedding is one-hot (the classic char-RNN: E = V, nothing learned) or a learned
table of size E. The head is one linear map shared by every time step.
"""
from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .cell import Cell
from .state import State


class OneHot(nn.Module):
    """ids [T, B] -> one-hot float [T, B, V]; no parameters."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding_dim = vocab_size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.one_hot(ids.long(), self.vocab_size).float()


def make_embedding(vocab_size: int, spec: dict) -> nn.Module:
    """spec: {"type": "one-hot"} or {"type": "learned", "size": E}."""
    if spec.get("type", "one-hot") == "one-hot":
        return OneHot(vocab_size)
    return nn.Embedding(vocab_size, int(spec["size"]))


def embedding_size(vocab_size: int, spec: dict) -> int:
    return vocab_size if spec.get("type", "one-hot") == "one-hot" else int(spec["size"])


class LanguageModel(nn.Module):
    """The model around a cell (Session.build_model, LoadedModel.model):
    ids [T, B] -> embedding -> cell -> head -> logits [T, B, V].

    Attributes vocab_size, embedding, cell and head; forward(ids, state, lengths) ->
    (logits, state); initial_state(batch_size, device); stepper(state) for generation."""

    def __init__(self, vocab_size: int, cell: Cell, embedding: nn.Module):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = embedding
        self.cell = cell
        self.head = nn.Linear(cell.output_size, vocab_size)

    def forward(self, ids: torch.Tensor, state: State = None,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """ids [T, B] -> (logits [T, B, V], final state)."""
        x = self.embedding(ids.long())            # [T, B, E]
        h, state = self.cell(x, state, lengths)   # [T, B, H*D]
        return self.head(h), state

    def initial_state(self, batch_size: int, device=None) -> State:
        return self.cell.initial_state(batch_size, device)

    @property
    def explicit_randomness(self) -> bool:
        """True when training draws random numbers only through seqgen.dropout."""
        return bool(getattr(self.cell, "explicit_randomness", False))

    def stepper(self, state: State) -> "TokenStepper":
        """One token per row per call from `state` on, through the cell's own stepper."""
        return TokenStepper(self, state)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def plain_embedding(module: nn.Module) -> bool:
    """A bare nn.Embedding lookup: no max_norm renormalising rows, not sparse."""
    return type(module) is nn.Embedding and module.max_norm is None and not module.sparse


def direct(module: nn.Module):
    """The function a plain nn.Embedding or nn.Linear computes, without the module call
    (its hooks machinery costs more than the lookup itself at batch 1: about 25 us per
    generated token of 150 here); any other module as it is. Same numbers either way."""
    if type(module) is nn.Linear:
        return partial(F.linear, weight=module.weight, bias=module.bias)
    if plain_embedding(module):
        return partial(F.embedding, weight=module.weight, padding_idx=module.padding_idx,
                       scale_grad_by_freq=module.scale_grad_by_freq)
    return module


class TokenStepper:
    """Generation's inner step, carrying the state between calls:

        logits = stepper(ids)       ids [B] int64 -> logits [B, V]
        stepper.state               the model's state after the last call
        stepper.native_loop()       None, or (batch 1, from a cell stepper's token_loop)
                                    a loop: loop.run(logits [V], count, temperature,
                                    uniforms, eos, step_last) -> (tokens [n], logits
                                    [n, V]), a chunk of steps and plain choices in one
                                    call on the same state (seqgen.generate uses it)
    """

    def __init__(self, model: LanguageModel, state: State):
        self.embedding, self.head = direct(model.embedding), direct(model.head)
        self.cell = model.cell.stepper(state)
        # a stepper may offer step_view: its output as a view of its buffers, valid until
        # its next call; the head reads it at once, so no copy is needed
        self.step = getattr(self.cell, "step_view", self.cell)
        # ... and fold_input(table): ids -> that view, taking the embedding's rows through
        # the first layer's input weights once for the whole vocabulary (None: declined)
        fold = getattr(self.cell, "fold_input", None)
        self.step_ids = (fold(model.embedding.weight.detach())
                         if fold is not None and plain_embedding(model.embedding) else None)
        self.model, self._loop = model, False            # native_loop(): made on first use

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        if self.step_ids is not None:
            return self.head(self.step_ids(ids))                     # [B] -> [B, H] -> [B, V]
        return self.head(self.step(self.embedding(ids)))              # [B, E] -> [B, H*D] -> [B, V]

    def native_loop(self):
        """The cell stepper's token_loop over this model's embedding and head, if it
        offers one and takes them (for batch 1; see the class docstring), else None.
        Made on the first call, which may build the cell's C++ kernel."""
        if self._loop is False:
            make, model = getattr(self.cell, "token_loop", None), self.model
            self._loop = (make(model.embedding.weight.detach(), model.head.weight.detach(),
                               None if model.head.bias is None else model.head.bias.detach())
                          if make is not None and self.step_ids is not None
                          and type(model.head) is nn.Linear else None)
        return self._loop

    @property
    def state(self) -> State:
        return self.cell.state
