"""Requests served without the batch, each in a worker thread with one model call.

- Searching strategies (`Strategy.search` is not None: beam, teacher forcing) and models
  of aligned tasks: `TextGenerator.generate` once for the whole request; a stream gets
  the result as one chunk per choice.
- Scoring (/v1/score): one whole-sequence call; each token's log-probability given the
  tokens before it (the first token is context only).
"""
from __future__ import annotations

import math

import torch

from seqgen.generate import start_token

from .rows import Piece


@torch.inference_mode()
def log_probs(model, ids: torch.Tensor) -> torch.Tensor:
    """ids [T] -> log p of the next token at every position [T, V]."""
    device = next(model.parameters()).device
    logits, _ = model(ids.long().to(device)[:, None])                        # [T, 1, V]
    return torch.log_softmax(logits[:, 0].float(), dim=-1).cpu()


def searched(loaded, request, strategy, prompt_ids: list[torch.Tensor]) -> tuple[list[Piece], int]:
    """Every choice of a request, made by one generate call -> (pieces, completion tokens)."""
    vocab = loaded.vocab
    samples = loaded.generator.generate(request.prompts, strategy, request.max_tokens,
                                        request.n, request.seed, stop=request.stops)
    pieces, used = [], 0
    for index, sample in enumerate(samples):
        prompt = request.prompts[index // request.n]
        ids = vocab.encode(sample.text, on_unknown="skip").long() if sample.text else \
            torch.zeros(0, dtype=torch.long)
        names = [vocab.tokens[i] for i in ids.tolist()]
        lps = list(sample.logprobs)[:len(names)]
        lps += [None] * (len(names) - len(lps))
        reason = "length" if len(sample.logprobs) >= request.max_tokens else "stop"
        piece = Piece(index, sample.text, finish_reason=reason,
                      completion_tokens=min(len(names) + (reason == "stop"), request.max_tokens))
        if request.logprobs is not None:
            piece.tokens, piece.token_logprobs = names, lps
            piece.top_logprobs = _tops(loaded, prompt_ids[index // request.n], ids,
                                       request.logprobs)
            ends = [len(n) for n in names]
            piece.text_offset = [len(prompt) + sum(ends[:i]) for i in range(len(names))]
        used += piece.completion_tokens
        pieces.append(piece)
    return pieces, used


def _tops(loaded, prompt: torch.Tensor, ids: torch.Tensor, k: int) -> list[dict]:
    """The k most likely tokens at each position of a continuation (teacher forced)."""
    if not ids.numel():
        return []
    if not k:
        return [{} for _ in range(ids.numel())]
    fed = prompt.long() if prompt.numel() else torch.tensor([start_token(loaded.vocab)])
    logp = log_probs(loaded.model, torch.cat([fed, ids]))[len(fed) - 1:-1]    # [N, V]
    top = logp.topk(min(k, logp.shape[1]), dim=-1)
    names = loaded.vocab.tokens
    return [{names[i]: v for i, v in zip(row_i, row_v)}
            for row_i, row_v in zip(top.indices.tolist(), top.values.tolist())]


def score(loaded, ids: torch.Tensor) -> dict:
    """ids [T >= 2] -> tokens, per-token log p (None for the first), loss, perplexity."""
    logp = log_probs(loaded.model, ids)                                       # [T, V]
    ids = ids.long()
    token_logprobs = logp[:-1].gather(1, ids[1:, None])[:, 0].tolist()       # [T-1]
    loss = -sum(token_logprobs) / len(token_logprobs)
    return {"tokens": [loaded.vocab.tokens[i] for i in ids.tolist()],
            "token_logprobs": [None] + token_logprobs, "loss": loss,
            "perplexity": math.exp(min(loss, 700.0))}
