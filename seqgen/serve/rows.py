"""One choice being generated (a row of the batch), and the pieces of text it yields.

A row turns each new token into what a client may see: `RowText` (seqgen.stopping)
builds the text exactly as `LoadedModel.generate` does, ends the row at <eos> or at a
stop string (text cut before it), and holds back text that may still turn out to begin
a stop string. A `Piece` carries the newly settled text and the tokens that lie wholly
inside it, with their log-probabilities, so streamed chunks always pair text and tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from seqgen.stopping import RowText

if TYPE_CHECKING:
    from .engine import Job


@dataclass
class Piece:
    """What one choice adds in one step (or several, once merged)."""
    index: int                                   # the choice index
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict] = field(default_factory=list)
    text_offset: list[int] = field(default_factory=list)
    finish_reason: str | None = None             # "stop" | "length" on the last piece
    completion_tokens: int = 0                   # on the last piece: tokens generated

    def merge(self, later: "Piece") -> None:
        self.text += later.text
        for name in ("tokens", "token_logprobs", "top_logprobs", "text_offset"):
            getattr(self, name).extend(getattr(later, name))
        self.finish_reason = later.finish_reason or self.finish_reason
        self.completion_tokens = later.completion_tokens or self.completion_tokens


class Row:
    """A choice in the batch: its request, its own random generator, its text so far."""

    def __init__(self, job: "Job", index: int, prompt: str, prompt_ids: torch.Tensor,
                 device: torch.device):
        self.job, self.index = job, index
        vocab = job.vocab
        self.generator = torch.Generator(device=device).manual_seed(
            (job.request.seed + index) % 2**64)
        self.text = RowText(vocab, job.request.stops)
        self.offset = len(prompt)                # text_offset counts the prompt, as OpenAI
        self.seen = None                         # [V] bool: tokens of prompt + output
        if job.strategy.needs_history:
            self.seen = torch.zeros(len(vocab), dtype=torch.bool, device=device)
            self.seen[prompt_ids.to(device)] = True
        self.entries: list[tuple[str, float, dict | None, int]] = []  # token, logp, top, end
        self.shown_chars = 0
        self.shown_tokens = 0
        self.finished = False

    def advance(self, token: int, logprob: float, top: dict | None) -> Piece | None:
        """Take the row's next token; the Piece it makes visible, if any."""
        vocab, limit = self.job.vocab, self.job.request.max_tokens
        if self.seen is not None:
            self.seen[token] = True
        ended = self.text.add(token)
        if token != vocab.eos_id:
            self.entries.append((vocab.tokens[token], logprob, top, len(self.text.text)))
        reason = "stop" if ended else "length" if self.text.used >= limit else None
        self.finished = reason is not None
        if reason:
            visible, kept, _ = self.text.final()
        else:
            visible = self.text.settled()
            kept = self.shown_tokens
            while kept < len(self.entries) and self.entries[kept][3] <= len(visible):
                kept += 1
        if len(visible) == self.shown_chars and kept == self.shown_tokens and not reason:
            return None
        piece = Piece(self.index, visible[self.shown_chars:], finish_reason=reason,
                      completion_tokens=self.text.used if reason else 0)
        start = self.entries[self.shown_tokens - 1][3] if self.shown_tokens else 0
        for tok, lp, tops, end in self.entries[self.shown_tokens:kept]:
            piece.tokens.append(tok)
            piece.token_logprobs.append(lp)
            piece.top_logprobs.append(tops)
            piece.text_offset.append(self.offset + start)
            start = end
        self.shown_chars, self.shown_tokens = len(visible), kept
        return piece
