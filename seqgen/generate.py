"""Generating text from a trained model: one batch, carried state, no re-run prefix.

All prompts x num_samples rows run together. The prompts (padded, with their lengths)
go through the model in one whole-sequence call; after that the loop feeds one token
per step and carries the state, so the cost per new token does not grow with the text.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .data import CAUSAL_TASKS
from .errors import GenerationError
from .model import LanguageModel
from .strategy import Strategy
from .vocab import Vocab


@dataclass
class Sample:
    prompt: str
    text: str                       # the continuation only (aligned tasks: the mapping)
    strategy: str
    logprobs: list[float] = field(default_factory=list)  # log p of each generated token


def start_token(vocab: Vocab) -> int:
    """What an empty prompt is primed with: <bos>, else a newline, else a space."""
    for token in ("<bos>", "\n", " "):
        if token in vocab.stoi:
            return vocab.stoi[token]
    raise GenerationError("an empty prompt needs a start token (<bos>, newline or space), "
                          "and this vocabulary has none; give a non-empty prompt")


class TextGenerator:
    """A loaded model and its vocabulary; safe to share between threads (it is never
    mutated: every call uses its own torch.Generator)."""

    def __init__(self, model: LanguageModel, vocab: Vocab, task: str = "lm"):
        self.model = model.eval()
        self.vocab = vocab
        self.task = task

    def encode_prompts(self, prompts: list[str], on_unknown: str) -> list[torch.Tensor]:
        encoded = []
        for i, prompt in enumerate(prompts):
            try:
                ids = self.vocab.encode(prompt, on_unknown=on_unknown).long()
            except GenerationError as e:
                raise GenerationError(f"prompt {i + 1} ({prompt!r}): {e}") from None
            if ids.numel() == 0 or (self.task == "lines" and self.vocab.bos_id is not None):
                ids = torch.cat([torch.tensor([start_token(self.vocab)]), ids])
            encoded.append(ids)
        return encoded

    @torch.inference_mode()
    def generate(self, prompts: list[str], strategy: Strategy, max_new_tokens: int = 100,
                 num_samples: int = 1, seed: int = 0, on_unknown: str = "error",
                 name: str | None = None) -> list[Sample]:
        name = name or strategy.describe()
        if self.task not in CAUSAL_TASKS:
            return self.map(prompts, on_unknown, name)
        rows = [p for p in self.encode_prompts(prompts, on_unknown) for _ in range(num_samples)]
        device = next(self.model.parameters()).device
        lengths = torch.tensor([len(r) for r in rows])                     # [B]
        ids = torch.nn.utils.rnn.pad_sequence(rows).to(device)             # [Tp, B]
        logits, state = self.model(ids, None, lengths)                     # [Tp, B, V]
        batch = torch.arange(len(rows), device=device)
        last = logits[(lengths - 1).to(device), batch]                     # [B, V]
        generator = torch.Generator(device=device).manual_seed(seed)
        out = torch.empty(max_new_tokens, len(rows), dtype=torch.long, device=device)
        logp = torch.empty(max_new_tokens, len(rows), device=device)
        done = torch.zeros(len(rows), dtype=torch.bool, device=device)
        eos = self.vocab.eos_id
        steps = 0
        for t in range(max_new_tokens):
            token = strategy.choose(last, generator)                        # [B]
            out[t] = token
            logp[t] = torch.log_softmax(last.float(), -1).gather(1, token[:, None])[:, 0]
            steps = t + 1
            if eos is not None:
                done |= token == eos
                if bool(done.all()):
                    break
            logits, state = self.model(token.unsqueeze(0), state)           # [1, B, V]
            last = logits[0]
        samples = []
        for col in range(len(rows)):
            toks = out[:steps, col].tolist()
            if eos is not None and eos in toks:
                toks = toks[: toks.index(eos)]
            samples.append(Sample(prompts[col // num_samples], self.vocab.decode(toks), name,
                                  logp[: len(toks), col].tolist()))
        return samples

    def map(self, inputs: list[str], on_unknown: str, name: str) -> list[Sample]:
        """Aligned tasks: the most likely target at every input position."""
        out = []
        for text in inputs:
            ids = self.vocab.encode(text, on_unknown=on_unknown).long()
            if ids.numel() == 0:
                out.append(Sample(text, "", name))
                continue
            logits, _ = self.model(ids.unsqueeze(1))                         # [T, 1, V]
            best = logits[:, 0].log_softmax(-1).max(-1)
            out.append(Sample(text, self.vocab.decode(best.indices), "argmax",
                              best.values.tolist()))
        return out
