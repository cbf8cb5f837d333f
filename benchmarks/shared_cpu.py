"""Training speed when another process busies one core, before and after the remedy
(train.threads=1). Prints one JSON object.

    python benchmarks/shared_cpu.py               # about 1-2 min on an idle 2-core machine
    python benchmarks/shared_cpu.py --steps 80

Each condition trains the quickstart preset (an LSTM of 128 on its built-in grammar) for
--steps optimizer steps in a fresh process, and reports its training tokens/s and whether
the run warned that its speed swung (seqgen/step_timing.py):

    quiet             nothing else running, torch's default threads (one per core)
    busy              a busy loop pinned to core 0, default threads: what users hit
    busy_threads1     the same busy loop, train.threads=1: the remedy
    quiet_threads1    train.threads=1 on the idle machine: what the remedy costs there

The warning fires when the smoothed speed swings more than 5x within a run: when the
load comes or goes, or (as a busy loop does to 2-thread kernels) varies from step to
step. A run slowed evenly from its first step to its last has nothing to compare with.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = "--child"


def child(threads: int | None, steps: int) -> None:
    import seqgen
    overrides = [f"train.max_steps={steps}", "train.epochs=100", "train.sample_every=null",
                 "generate.strategies=[]", "train.log_every=1000"]
    if threads:
        overrides.append(f"train.threads={threads}")
    warnings = []
    result = seqgen.Session(entry_points=False).run(
        "quickstart", overrides, save=False,
        emit=lambda e: warnings.append(e.data["message"]) if e.kind == "warning" else None)
    json.dump({"tokens_per_second": result.train.tokens / result.train.seconds,
               "steps": result.train.step, "swing_warning": any("swung" in w for w in warnings)},
              sys.stdout)


def measure(threads: int | None, steps: int, busy: bool) -> dict:
    loop = None
    if busy:
        loop = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                preexec_fn=lambda: os.sched_setaffinity(0, {0}))
        time.sleep(0.5)                    # let the loop take its core before we start
    try:
        out = subprocess.run([sys.executable, __file__, CHILD, str(threads or 0), str(steps)],
                             capture_output=True, text=True, check=True)
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs at least 2 cores (one for the busy loop)")
    sys.path.insert(0, os.path.dirname(__file__))
    from common import emit
    runs = {"quiet": measure(None, args.steps, False),
            "busy": measure(None, args.steps, True),
            "busy_threads1": measure(1, args.steps, True),
            "quiet_threads1": measure(1, args.steps, False)}
    speed = {k: v["tokens_per_second"] for k, v in runs.items()}
    emit({"benchmark": "shared_cpu", "steps": args.steps, "cores": os.cpu_count(),
          "runs": runs,
          "busy_slowdown_default": speed["quiet"] / speed["busy"],
          "busy_slowdown_threads1": speed["quiet"] / speed["busy_threads1"],
          "remedy_speedup_when_busy": speed["busy_threads1"] / speed["busy"],
          "remedy_cost_when_quiet": speed["quiet"] / speed["quiet_threads1"]})


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == CHILD:
        child(int(sys.argv[2]) or None, int(sys.argv[3]))
    else:
        main()
