"""Strategies built from logits processors: a chain of them, then argmax or a draw.

`sample` takes any processors, in the order given. The shorthands are fixed chains of
the built-ins, in a fixed order: repetition penalty -> temperature -> top-k -> top-p ->
draw. Temperature 0, and top-k 1, mean greedy: the shorthand then keeps only the
penalty and takes the argmax (the other knobs cannot change it).
"""
from __future__ import annotations

import torch

from seqgen import PlainChoice, Strategy
from seqgen_plugins.processors import RepetitionPenalty, Temperature, TopK, TopP


class Chain(Strategy):
    """The `sample` strategy: each processor in order, then choice "draw" (from softmax
    of what is left) or "argmax". Processors that read history are skipped when the
    caller keeps none (the trainer's free-running steps)."""

    def __init__(self, processors=(), choice: str = "draw"):
        self.processors = list(processors)
        self.choice = choice
        self.needs_history = any(p.needs_history for p in self.processors)
        self.stochastic = choice == "draw" and not any(p.greedy for p in self.processors)

    def choose(self, logits, generator=None, history=None):
        logits = logits.float()                                        # [B, V]
        for processor in self.processors:
            if history is not None or not processor.needs_history:
                logits = processor(logits, history)
        if not self.stochastic:
            return logits.argmax(dim=-1)
        return draw(torch.softmax(logits, dim=-1), generator)

    @property
    def plain_choice(self):
        """Argmax, a draw, or a draw after one temperature: the rules a native generation
        loop runs itself (seqgen.PlainChoice). None for any other chain, and for a
        subclass with its own choose."""
        if type(self).choose is not Chain.choose or self.needs_history:
            return None
        if not self.processors:
            return PlainChoice(1.0 if self.stochastic else 0.0)
        only = self.processors[0]
        if (len(self.processors) == 1 and type(only) is Temperature and self.stochastic
                and 0 < only.temperature < float("inf")):
            return PlainChoice(only.temperature)
        return None

    def warnings(self):
        notes = [note for p in self.processors for note in p.warnings()]
        first = next((i for i, p in enumerate(self.processors) if p.greedy), None)
        idle = [] if first is None else [p.describe() for p in self.processors[first + 1:]]
        if idle:
            notes.append(f"{self.processors[first].describe()} keeps a single token "
                         f"(greedy): {' and '.join(idle)} after it "
                         f"{'has' if len(idle) == 1 else 'have'} no effect")
        return notes

    def describe(self):
        return f"sample({' -> '.join([p.describe() for p in self.processors] + [self.choice])})"


def _penalty(penalty: float) -> list:
    return [RepetitionPenalty(penalty)] if penalty != 1.0 else []


def _penalty_note(penalty: float) -> str:
    return "" if penalty == 1.0 else f"repetition_penalty={penalty:g}"


class Greedy(Chain):
    """argmax: the single most likely token (after the repetition penalty). Deterministic."""

    def __init__(self, repetition_penalty: float = 1.0):
        super().__init__(_penalty(repetition_penalty), "argmax")
        self.repetition_penalty = float(repetition_penalty)

    def describe(self):
        note = _penalty_note(self.repetition_penalty)
        return f"greedy({note})" if note else "greedy"


class Sample(Chain):
    """Draw from the distribution left after temperature, top-k and top-p.

    `name` is the registered name, and `labels` the option names that strategy uses for
    top_k / top_p ("k", "p"), so descriptions and warnings speak the user's words.
    """

    def __init__(self, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, repetition_penalty: float = 1.0, *,
                 name: str = "temperature", labels: dict | None = None):
        self.temperature = float(temperature)
        self.top_k = top_k
        self.top_p = top_p
        self.repetition_penalty = float(repetition_penalty)
        self.name = name
        self.labels = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
                       **(labels or {})}
        if self.temperature > 0 and top_k != 1:
            steps = [Temperature(self.temperature)] if self.temperature != 1.0 else []
            steps += [TopK(top_k)] if top_k is not None else []
            steps += [TopP(top_p)] if top_p is not None else []
            super().__init__(_penalty(self.repetition_penalty) + steps, "draw")
        else:
            super().__init__(_penalty(self.repetition_penalty), "argmax")

    def warnings(self):
        k, p, t = self.labels["top_k"], self.labels["top_p"], self.labels["temperature"]
        notes = []
        idle = [n for n, v in ((k, self.top_k), (p, self.top_p)) if v is not None]
        if self.temperature == 0 and idle:
            notes.append(f"{t} 0 is greedy decoding: {' and '.join(idle)} "
                         f"{'has' if len(idle) == 1 else 'have'} no effect")
        elif self.top_k == 1:
            idle = [n for n, on in ((t, self.temperature != 1.0), (p, self.top_p is not None))
                    if on]
            if idle:
                notes.append(f"{k} 1 keeps a single token (greedy): {' and '.join(idle)} "
                             f"{'has' if len(idle) == 1 else 'have'} no effect")
        if self.top_p == 1.0 and self.temperature != 0:
            notes.append(f"{p} 1 keeps every token: it has no effect")
        return notes

    def describe(self):
        values = {"temperature": f"{self.temperature:g}", "top_k": self.top_k,
                  "top_p": None if self.top_p is None else f"{self.top_p:g}"}
        own = {"top-k": "top_k", "top-p": "top_p"}.get(self.name, "temperature")
        parts = [f"{self.labels[key]}={values[key]}"
                 for key in [own] + [k for k in values if k != own] if values[key] is not None]
        if self.repetition_penalty != 1.0:
            parts.append(_penalty_note(self.repetition_penalty))
        return f"{self.name}({', '.join(parts)})"


class Random(Sample):
    """The model's full distribution: no temperature, top-k or top-p."""

    def __init__(self, repetition_penalty: float = 1.0):
        super().__init__(1.0, repetition_penalty=repetition_penalty, name="random")

    def describe(self):
        note = _penalty_note(self.repetition_penalty)
        return f"random({note})" if note else "random"


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row by inverse CDF: probs [B, V] (rows may sum to about 1) -> [B].

    One uniform number per row, where torch.multinomial draws one per token: at batch
    1024 and 65 tokens that is ~1.5 ms a step against ~0.1 ms.
    """
    cdf = probs.cumsum(dim=-1)                                         # [B, V]
    total = cdf[:, -1:].contiguous()                                   # [B, 1]
    u = torch.rand(total.shape, generator=generator, device=probs.device) * total
    token = torch.searchsorted(cdf, u, right=True)                     # first cdf > u
    # u may round up to the total: fall back to the last token with any probability
    # (where the flat tail of the cdf begins), never to a filtered-out one.
    return torch.minimum(token, torch.searchsorted(cdf, total)).squeeze(-1)
