"""Picking the next token of many rows at once, each row drawing from its own generator.

A batch mixes requests, each with its own seed, so no draw may use a generator shared
by the batch. Rows of one strategy are handled together:

- deterministic strategies (greedy, argmax chains, ...) run once over the group's
  logits: rows are independent, and nothing random is drawn;
- the built-in sampling strategies are chains of logits processors then a draw (see
  seqgen.Strategy): the processors run once over the group [G, V], then each row draws
  its uniform number from its own generator, exactly as `draw` would for that row alone;
- any other random strategy is called row by row ([1, V]) with the row's generator.

So a row's token is what generating that request alone gives with the same seed.
"""
from __future__ import annotations

from typing import Sequence

import torch

from seqgen import History, LogitsProcessor, Strategy

from .rows import Row


def is_chain(strategy: Strategy) -> bool:
    """A processors-then-choice strategy (the built-in sampling ones and `sample`)."""
    processors = getattr(strategy, "processors", None)
    return (isinstance(processors, list) and getattr(strategy, "choice", None) in ("draw", "argmax")
            and all(isinstance(p, LogitsProcessor) for p in processors))


def choose(strategy: Strategy, logits: torch.Tensor, rows: Sequence[Row]) -> torch.Tensor:
    """logits [G, V] of the rows of one strategy -> their tokens [G] int64."""
    history = None
    if strategy.needs_history:
        history = History(torch.stack([row.seen for row in rows]))           # [G, V]
    if is_chain(strategy):
        logits = logits.float()
        for processor in strategy.processors:
            logits = processor(logits, history)
        if not strategy.stochastic:
            return logits.argmax(dim=-1)
        return draw_rows(torch.softmax(logits, dim=-1), [row.generator for row in rows])
    if not strategy.stochastic:
        return (strategy.choose(logits, None) if history is None
                else strategy.choose(logits, None, history))
    out = []
    for i, row in enumerate(rows):
        one = logits[i:i + 1]                                                 # [1, V]
        out.append(strategy.choose(one, row.generator) if history is None else
                   strategy.choose(one, row.generator, History(history.seen[i:i + 1])))
    return torch.cat(out)


def draw_rows(probs: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """Inverse-CDF draw, one uniform number per row from that row's generator:
    probs [G, V] -> [G]. Row by row the same numbers as the built-in `draw` on [1, V]."""
    cdf = probs.cumsum(dim=-1)                                               # [G, V]
    total = cdf[:, -1:].contiguous()                                         # [G, 1]
    u = torch.cat([torch.rand((1, 1), generator=g, device=probs.device) for g in generators])
    token = torch.searchsorted(cdf, u * total, right=True)                   # first cdf > u
    return torch.minimum(token, torch.searchsorted(cdf, total)).squeeze(-1)
