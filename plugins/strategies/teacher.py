"""Teacher forcing for training, with a ratio and scheduled-sampling decay.

At each step the model is fed the reference token with probability `ratio` (decayed by
`decay` per epoch: ratio_e = ratio * decay**epoch, floored at `min_ratio`), otherwise its
own prediction, picked greedily or by sampling (`free`). ratio 1 and decay 1 is classic
teacher forcing, which the trainer runs as one whole-sequence call.
"""
from __future__ import annotations

from seqgen import Strategy

from .sampling import Greedy, Sample


class TeacherForcing(Strategy):
    def __init__(self, ratio: float = 1.0, decay: float = 1.0, min_ratio: float = 0.0,
                 free: str = "greedy"):
        self.ratio, self.decay, self.min_ratio = float(ratio), float(decay), float(min_ratio)
        self.free = free
        self._own = Greedy() if free == "greedy" else Sample(1.0)
        self.stochastic = self._own.stochastic

    def teacher_ratio(self, epoch: int) -> float:
        return max(self.min_ratio, self.ratio * self.decay ** epoch)

    def choose(self, logits, generator=None):
        return self._own.choose(logits, generator)

    def warnings(self):
        if self.ratio == 1.0 and self.decay == 1.0 and self.free != "greedy":
            return ["ratio 1 without decay always feeds the reference: 'free' has no effect"]
        return []

    def describe(self):
        return f"teacher-forcing(ratio={self.ratio:g}, decay={self.decay:g})"
