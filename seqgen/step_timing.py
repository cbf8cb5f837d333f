"""Noticing a training run's speed swing: the sign that another process took a core.

torch's multi-threaded CPU kernels wait for their slowest thread, so when another
process busies one of the cores they run on, a step can take 10-30x longer (measured on a
2-core machine: 32,000 -> 3,000 tokens/s with 2 threads; 20,900 -> 18,800 with 1).
`SwingDetector` watches the time per token of each step (so batches of different
lengths compare fairly), smooths it with a rolling median (one slow step, a collection
or a page fault, says nothing), and reports once when the slowest and fastest smoothed
values seen differ by more than `factor`.
"""
from __future__ import annotations

import statistics
from collections import deque

SWING_FACTOR = 5.0      # smoothed per-token times this far apart: the machine is shared
WARMUP_STEPS = 3        # the first steps warm caches and allocators: not compared
SMOOTHING = 5           # steps in the rolling median


class SwingDetector:
    def __init__(self, factor: float = SWING_FACTOR, warmup: int = WARMUP_STEPS,
                 smoothing: int = SMOOTHING):
        self.factor, self.warmup = factor, warmup
        self.recent: deque[float] = deque(maxlen=smoothing)
        self.seen = 0
        self.fastest = self.slowest = None
        self.reported = False

    def observe(self, seconds: float, tokens: int, threads: int) -> str | None:
        """One step's wall time and tokens; a message the first time the smoothed time
        per token has swung by more than `factor`, else None."""
        self.seen += 1
        if self.seen <= self.warmup or tokens <= 0 or self.reported:
            return None
        self.recent.append(seconds / tokens)
        if len(self.recent) < self.recent.maxlen:
            return None
        smoothed = statistics.median(self.recent)
        self.fastest = smoothed if self.fastest is None else min(self.fastest, smoothed)
        self.slowest = smoothed if self.slowest is None else max(self.slowest, smoothed)
        ratio = self.slowest / self.fastest if self.fastest > 0 else 0.0
        if ratio <= self.factor:
            return None
        self.reported = True
        advice = (f" torch's {threads}-thread kernels slow down sharply when another "
                  f"process takes one of their cores: set train.threads=1 (or fewer threads "
                  f"than there are free cores) for a steady speed."
                  if threads > 1 else "")
        return (f"training speed swung {ratio:.0f}x ({1 / self.fastest:,.0f} vs "
                f"{1 / self.slowest:,.0f} tokens/s over {len(self.recent)}-step medians): "
                f"another process is probably busy on this machine.{advice}")
