"""What a strategy with its own decoding loop receives (`Strategy.search`).

The generator primes the model with every prompt (one whole-sequence call) and hands the
strategy a `Decoding`: the logits and state after each prompt, and the few operations a
search needs. The contract is documented in seqgen/strategy.py.
"""
from __future__ import annotations

from typing import Callable

import torch

from .model import LanguageModel
from .state import State
from .stopping import first_stop
from .vocab import Vocab


class Decoding:
    def __init__(self, model: LanguageModel, vocab: Vocab, logits: torch.Tensor, state: State,
                 *, num_samples: int, max_new_tokens: int, generator: torch.Generator,
                 on_unknown: str, stops: tuple[str, ...], warn: Callable[[str], None]):
        self.model, self.vocab = model, vocab
        self.logits = logits                  # [B, V], one row per prompt
        self.state = state                    # rows on dim 1
        self.num_samples = num_samples
        self.max_new_tokens = max_new_tokens
        self.generator = generator
        self.on_unknown = on_unknown
        self.stops = stops
        self.warn = warn

    @property
    def can_end(self) -> bool:
        """Whether a sequence may end before max_new_tokens (<eos> exists, or stops given)."""
        return self.vocab.eos_id is not None or bool(self.stops)

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens [N] -> (logits [N, V], state): one step, carrying the state."""
        logits, state = self.model(tokens.unsqueeze(0), state)
        return logits[0], state

    def feed(self, ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """ids [T, N] -> (logits [T, N, V], state): a whole sequence in one call."""
        return self.model(ids, state)

    def encode(self, text: str) -> torch.Tensor:
        """text -> ids [T] int64 on the model's device, with the call's on_unknown rule."""
        device = self.logits.device
        return self.vocab.encode(text, on_unknown=self.on_unknown).long().to(device)

    def ended(self, seqs: torch.Tensor) -> torch.Tensor:
        """seqs [N, t] generated ids -> bool [N]: the row's last token is <eos>, or its
        text now holds a stop string (rows that held one before are assumed ended)."""
        eos = self.vocab.eos_id
        ended = seqs[:, -1] == eos if eos is not None else torch.zeros(
            len(seqs), dtype=torch.bool, device=seqs.device)
        if self.stops:
            for row, ids in enumerate(seqs.tolist()):
                if not ended[row] and first_stop(self.vocab.decode(ids), self.stops) is not None:
                    ended[row] = True
        return ended
