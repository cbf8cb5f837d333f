"""The contract every logits-processor plugin implements, and the history it may read."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class History:
    """What the generator knows of each row so far, for processors that need it."""
    seen: torch.Tensor    # [B, V] bool: token v is in row b's prompt or output so far


class LogitsProcessor:
    """One step of decoding before the choice: logits [B, V] -> logits [B, V].

    A sampling strategy stacks processors in order and then chooses a token from what is
    left, by argmax or by a draw from softmax(logits):

        logits = processor(logits, history)      logits [B, V] float32 -> [B, V] float32

    - Rows are independent; return new logits and never modify `logits` or `history` in
      place (the generator still reads the model's own logits afterwards).
    - Filtering a token out means setting its logit to -inf. Leave at least one token
      finite in every row that had one, so the choice always has something to pick.
    - `history` is a `seqgen.History` (`history.seen` [B, V] bool) when the caller keeps
      one, else None. A processor that reads it sets `needs_history = True`: the
      generator then keeps the history (prompt + output tokens of each row) for the
      strategy, and callers that keep none, such as the trainer's free-running steps,
      skip the processor rather than call it with None.
    - `greedy = True` declares that the processor keeps a single token per row
      (temperature 0, top-k 1): the choice is then deterministic, and processors after
      it have no effect (the strategy warns about them).
    - `warnings()` lists options that have no effect (e.g. "top-p(1) keeps every token:
      it has no effect"); the strategy passes them on to the user, not fatal.
    - `describe()` is how the processor reads in a strategy's description and in
      warnings, e.g. "top-k(5)".

    A factory registered through the `register_processors` hook builds one from its
    options; a spec stacks them: {"type": "sample", "processors": [{"type": "top-k",
    "k": 5}, {"type": "my-filter"}]}.
    """

    #: True when __call__ reads `history` (so the generator must keep one).
    needs_history: bool = False
    #: True when it leaves a single token per row (later processors have no effect).
    greedy: bool = False

    def __call__(self, logits: torch.Tensor, history: History | None = None) -> torch.Tensor:
        raise NotImplementedError

    def warnings(self) -> list[str]:
        """Options that have no effect (shown to the user, not fatal)."""
        return []

    def describe(self) -> str:
        return type(self).__name__
