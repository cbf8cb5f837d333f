"""The contract every event-logger plugin implements (`train.loggers` in a spec)."""
from __future__ import annotations

from .events import Event


class Logger:
    """Receives every event of one run, in order, and is closed once when it ends.

    A logger factory is called as `factory(run_dir, **options)` once the run directory
    exists and before the first event; files it writes belong under `run_dir` (a
    resumed run builds its loggers again with the same directory, so append rather than
    overwrite). Then:

        log(event)   for every `seqgen.Event` the run emits ("start", "step", "log",
                     "epoch", "eval", ..., "end"), the same ones `on_event` sees.
                     Event data is JSON-able; do not modify it.
        close()      exactly once, after the last event: when the run ends, fails
                     (an exception, a diverged loss) or is interrupted. Release files here.

    Write each record as it arrives (flushed), so an interrupted run keeps everything
    logged before the interruption. An exception raised by `log` stops the run.
    A resumed run starts again with a "start" event whose `resumed_at_step` says where
    it continues; after an interruption nothing past that step was logged, but after a
    crash (the process killed between checkpoints) records past it may come twice.
    """

    def log(self, event: Event) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""
