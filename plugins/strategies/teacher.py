"""Teacher forcing: in training, what the model is fed; in generation, scoring a reference.

Training: at each step the model is fed the reference token with probability `ratio`
(decayed by `decay` per epoch: ratio_e = ratio * decay**epoch, floored at `min_ratio`),
otherwise its own prediction, picked greedily or by sampling (`free`). ratio 1 and decay 1
is classic teacher forcing, which the trainer runs as one whole-sequence call.

Generation: the `reference` text is followed after each prompt (fed in one whole-sequence
call, never sampled) and scored: each Sample holds the reference as its text, the log
probability of each of its tokens, and their sum as the score (`Sample.perplexity` is
exp of minus their mean). `LoadedModel.score(text)` is the same measure for a whole text
without a prompt, summarised.
"""
from __future__ import annotations

import torch

from seqgen import GenerationError, Hypothesis, Strategy

from .sampling import Greedy, Sample


class TeacherForcing(Strategy):
    def __init__(self, ratio: float = 1.0, decay: float = 1.0, min_ratio: float = 0.0,
                 free: str = "greedy", reference: str | None = None):
        self.ratio, self.decay, self.min_ratio = float(ratio), float(decay), float(min_ratio)
        self.free = free
        self.reference = reference
        self._own = Greedy() if free == "greedy" else Sample(1.0)
        self.stochastic = self._own.stochastic

    def teacher_ratio(self, epoch: int) -> float:
        return max(self.min_ratio, self.ratio * self.decay ** epoch)

    def choose(self, logits, generator=None):
        return self._own.choose(logits, generator)

    def search(self, decoding):
        """Follow the reference after each prompt; one hypothesis per prompt, scored."""
        if self.reference is None:
            raise GenerationError(
                "teacher-forcing in generation follows a reference text and scores it: give "
                "one, e.g. --set reference='...' or {'type': 'teacher-forcing', 'reference': "
                "'...'}")
        ref = decoding.encode(self.reference)                            # [R]
        if ref.numel() == 0:
            raise GenerationError("teacher-forcing: the reference text is empty")
        if decoding.num_samples > 1:
            decoding.warn(f"teacher-forcing scores one reference: the {decoding.num_samples} "
                          f"samples of each prompt are identical (num_samples has no effect)")
        rows = decoding.logits.shape[0]
        ids = ref[:, None].expand(-1, rows)                                # [R, B]
        logits = decoding.logits[None]                                     # [1, B, V]
        if len(ref) > 1:  # the rest of the reference, in one call from each prompt's state
            rest, _ = decoding.feed(ids[:-1], decoding.state)              # [R-1, B, V]
            logits = torch.cat([logits, rest])
        logp = logits.float().log_softmax(-1).gather(2, ids[..., None])[..., 0]  # [R, B]
        tokens = ref.tolist()
        return [[Hypothesis(tokens, logp[:, row].tolist(), float(logp[:, row].sum()))]
                * decoding.num_samples for row in range(rows)]

    def warnings(self):
        notes = []
        if self.ratio == 1.0 and self.decay == 1.0 and self.free != "greedy":
            notes.append("ratio 1 without decay always feeds the reference: 'free' has no "
                         "effect")
        trained = [n for n, on in (("ratio", self.ratio != 1.0), ("decay", self.decay != 1.0),
                                   ("min_ratio", self.min_ratio != 0.0),
                                   ("free", self.free != "greedy")) if on]
        if self.reference is not None and trained:
            verb = "matters" if len(trained) == 1 else "matter"
            notes.append(f"{', '.join(trained)} only {verb} in training: scoring a reference "
                         f"always follows it")
        return notes

    def describe(self):
        if self.reference is not None:
            return "teacher-forcing(reference)"
        return f"teacher-forcing(ratio={self.ratio:g}, decay={self.decay:g})"
