"""Decoding strategies: what picks the next token. The contract is `Strategy`'s docstring."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import torch

if TYPE_CHECKING:
    from .decoding import Decoding
    from .processors import History


class GenerationWarning(UserWarning):
    """A generation option that has no effect in the combination asked for."""


@dataclass
class Hypothesis:
    """One sequence a searching strategy found for one prompt."""
    tokens: list[int]        # generated ids, including an ending <eos> if there is one
    logprobs: list[float]    # log p of each token under the model, aligned with `tokens`
    score: float             # what the strategy ranked by (higher is better)


@dataclass(frozen=True)
class PlainChoice:
    """A strategy's choice when it is one of the plain rules that a model's native
    generation loop may run itself (Strategy.plain_choice): argmax when temperature is 0
    (the first of equal maxima); else one draw per row from softmax(logits / temperature)
    by inverse CDF, with one `torch.rand` number per row from the generator, as
    seqgen_plugins.strategies.sampling.draw does (the first token whose cumulative
    probability exceeds u times the total, never past the last token with any)."""
    temperature: float

    def __post_init__(self):
        if not 0 <= self.temperature < float("inf"):
            raise ValueError(f"PlainChoice: temperature must be finite and >= 0 (0: argmax), "
                             f"got {self.temperature!r}")


class Strategy:
    """The contract every decoding-strategy plugin implements.

    A strategy picks the next token for each row of a batch. Generation uses it to
    sample; the trainer uses it to decide what the model is fed at each step:

        ids = strategy.choose(logits, generator)     logits [B, V] float -> ids [B] int64

    `choose` must not modify `logits` in place (the generator reads them afterwards).
    `stochastic` says whether it draws random numbers (so the seed matters).

    History: a strategy whose choice depends on the tokens each row has already seen
    (prompt + output; e.g. a repetition penalty) sets `needs_history = True`. The
    generator then keeps a `seqgen.History` and calls

        ids = strategy.choose(logits, generator, history)   history.seen [B, V] bool

    Callers that keep no history (the trainer's free-running steps) always call
    `choose(logits, generator)`, so such a strategy must accept history=None. A strategy
    that leaves `needs_history` False is never given one: `choose(logits, generator)` is
    all it has to implement.

    Logits processors: the built-in sampling strategies are chains of
    `seqgen.LogitsProcessor`s (logits [B, V] -> logits [B, V]) followed by a choice
    (argmax or a draw). `{"type": "sample", "processors": [...], "choice": "draw"}` stacks
    any registered processors, in order; `needs_history` is True when one of them reads
    the history. The shorthands (greedy, random, temperature, top-k, top-p) are fixed
    chains: repetition penalty -> temperature -> top-k -> top-p -> choice.

    `teacher_ratio(epoch)` is the probability that training feeds the reference token
    instead of the chosen one: 1.0 is pure teacher forcing (the trainer then uses the fast
    whole-sequence path), 0.0 is free running. Decoding strategies default to 0.0.

    `plain_choice`: a strategy whose `choose` is exactly a `seqgen.PlainChoice` rule (and
    needs no history) may say so; generation at batch 1 may then let the model's native
    loop make the choices (the fused LSTM's C++ loop does), consuming the generator the
    same way. None (the default): `choose` is always called.

    `warnings()` lists options that have no effect in the chosen combination. Generation
    passes them on, with its own notes about the call (e.g. identical samples from a
    deterministic strategy): from Python as `warnings.warn(..., GenerationWarning)`, in
    the CLI as "warning: ..." lines on stderr. `describe()` names the strategy and its
    options in samples and messages.

    Strategies that need their own decoding loop (beam search, scoring a reference) define
    `search(decoding)`. The generator then calls it once instead of running its per-step
    loop (and keeps no history). `decoding` (a `seqgen.decoding.Decoding`) holds one row
    per prompt:

        decoding.logits [B, V]      next-token logits after each prompt
        decoding.state              the model's state after each prompt (rows on dim 1;
                                    reorder or repeat rows with seqgen.select_batch)
        decoding.num_samples        hypotheses wanted per prompt, best first
        decoding.max_new_tokens, decoding.generator (seeded torch.Generator)
        decoding.step(tokens [N], state) -> (logits [N, V], state)     one token per row
        decoding.feed(ids [T, N], state) -> (logits [T, N, V], state)  one whole-sequence call
        decoding.encode(text) -> ids [T] int64      with the call's on_unknown rule
        decoding.ended(seqs [N, t]) -> bool [N]     did each row's last token end it
                                                    (<eos>, or completing a stop string)?
        decoding.can_end            can anything end a sequence early (<eos> or stops)?
        decoding.warn(message)      report a knob that has no effect in this call

    and returns, for each of the B prompts, `num_samples` `Hypothesis` objects, best
    first. The generator turns each into text (cut at <eos> and before the first stop
    string).
    """

    #: True when `choose` draws random numbers (so a generator/seed matters).
    stochastic: bool = False
    #: True when `choose` takes a third argument, the `History` of each row.
    needs_history: bool = False
    #: The plain rule `choose` follows, if it is one (see PlainChoice); None: call choose.
    plain_choice: Optional[PlainChoice] = None
    #: Optional own decoding loop: search(decoding) -> list[list[Hypothesis]].
    search: Optional[Callable[["Decoding"], list[list[Hypothesis]]]] = None

    def choose(self, logits: torch.Tensor, generator: torch.Generator | None = None,
               history: History | None = None) -> torch.Tensor:
        raise NotImplementedError

    def teacher_ratio(self, epoch: int) -> float:
        return 0.0

    def warnings(self) -> list[str]:
        """Options that have no effect in this combination (shown to the user, not fatal)."""
        return []

    def describe(self) -> str:
        return type(self).__name__
