"""Data-parallel scaling on CPU: training tokens/s at 1 and 2 ranks, one thread each,
and the 2-rank step time split into compute and all-reduce. Prints one JSON object.

    python benchmarks/ddp_scaling.py [--steps 100] [--warmup 3] [--pin]
    python benchmarks/ddp_scaling.py --steps 5 --hidden 64        # a quick check

Workload: Tiny Shakespeare (char level, the "text" dataset, --corpus to use another file,
valid_fraction 0), embedding 64 -> 1-layer LSTM hidden 256 (--hidden, --layers) ->
linear head, sequential sampler with a GLOBAL batch of 32 rows (--batch; must be even) x
64 steps (--num-steps), state carried between batches, Adam, clip_norm 1.0. Each rank
takes its half of the rows, so a 2-rank step trains on the same global batch as the
1-rank step.

Each configuration runs in fresh processes, every one limited to one thread
(OMP_NUM_THREADS=1, torch.set_num_threads(1)):
    1 rank    this script with --worker in a plain subprocess (World(), no DDP)
    2 ranks   python -m torch.distributed.run --standalone --nproc-per-node 2 \\
                  benchmarks/ddp_scaling.py --worker ...   (DDP over gloo)
The worker builds the run as `seqgen run` does (seqgen.runner.Run with the world from
torchrun's environment) and times calls of `Trainer.step` itself (no events, logging or
checkpoints) after --warmup untimed steps:
    step_ms     mean wall time of a normal step (forward, loss, backward with DDP's
                gradient all-reduce, clipping, Adam; the token count and the loss are
                summed over ranks asynchronously, during forward and backward)
    compute_ms  2 ranks: the same step inside DDP's no_sync() (no gradient all-reduce;
                the two small sums remain), measured on the batches after the normal steps
    allreduce_ms = step_ms - compute_ms: the gradient communication the step exposes
loop_tokens_per_second: then Trainer.fit itself for --steps steps (events, the ranks'
per-step agreement on stopping): what `seqgen run --nproc 2` trains at; loop_speedup.
Rank 0's timings are the headline; "per_rank" has each rank's. tokens_per_second =
global tokens per step / mean step time. speedup = tokens/s at 2 ranks / tokens/s at 1
rank; efficiency = speedup / 2. Target (issue): speedup >= 1.5 on a 2-core machine.

--pin pins each process to a core (os.sched_setaffinity): the 1-rank worker to core 1,
rank r of 2 to core r; "cores" reports every process's affinity either way.

"others_cpu_share": over each configuration's timed window, the share of the machine's
CPU time (wall x cores) that other processes used: /proc/stat busy time minus the CPU
time of our ranks (summed over them, all their threads). Near 0: the machine was ours.
Timings are wall clock; the corpus comes from the page cache after the first build.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import SHAKESPEARE, busy_seconds, emit  # noqa: E402

TARGET_SPEEDUP = 1.5


def make_spec(args) -> dict:
    return {
        "name": "ddp-scaling",
        "seed": 0,
        "device": "cpu",
        "dataset": {"type": "text", "path": str(args.corpus), "level": "char",
                    "valid_fraction": 0.0},
        "model": {"embedding": {"type": "learned", "size": 64},
                  "cell": {"type": "lstm", "hidden_size": args.hidden,
                           "num_layers": args.layers}},
        "sampler": {"type": "sequential", "batch_size": args.batch,
                    "num_steps": args.num_steps},
        "train": {"epochs": 1, "optimizer": {"type": "adam", "lr": 0.002},
                  "clip_norm": 1.0, "log_every": 10_000},
    }


# -- worker: one rank ---------------------------------------------------------------------
def batches(run):
    """The sampler's batches for this rank, epoch after epoch, on the run's device."""
    epoch = 0
    while True:
        for batch in run.sampler.epoch(epoch):
            yield batch.to(run.device)
        epoch += 1


def timed_steps(run, source, count: int, no_sync: bool) -> tuple[list[float], int]:
    """Wall seconds of `count` Trainer.step calls, and the global tokens they trained."""
    trainer, times, tokens = run.trainer, [], 0
    for _ in range(count):
        batch = next(source)
        state = trainer.start_state(batch.inputs.shape[1])
        start = time.perf_counter()
        if no_sync:
            with trainer.forward.no_sync():
                _, n, state = trainer.step(batch, state, 1.0)
        else:
            _, n, state = trainer.step(batch, state, 1.0)
        times.append(time.perf_counter() - start)
        trainer.carried = trainer.kept(state)   # as Trainer.fit does
        tokens += n
    return times, tokens


def worker(args) -> None:
    torch.set_num_threads(1)
    import seqgen
    from seqgen.distributed import World
    from seqgen.runner import Run

    world = World.from_env()
    if args.pin:
        core = (world.local_rank if world.distributed else 1) % (os.cpu_count() or 1)
        os.sched_setaffinity(0, {core})
    session = seqgen.Session(entry_points=False)
    spec = session.resolve(make_spec(args))
    device = torch.device("cpu")
    torch.manual_seed(0)
    with world.joined(device):
        run = Run(session, spec, emit=lambda event: None, world=world)
        run.model.train()
        source = batches(run)
        timed_steps(run, source, args.warmup, no_sync=False)
        if world.distributed:
            timed_steps(run, source, args.warmup, no_sync=True)
        world.barrier()
        wall, mine, busy = time.perf_counter(), time.process_time(), busy_seconds()
        step_times, tokens = timed_steps(run, source, args.steps, no_sync=False)
        compute_times = (timed_steps(run, source, args.steps, no_sync=True)[0]
                         if world.distributed else step_times)
        world.barrier()
        wall, mine = time.perf_counter() - wall, time.process_time() - mine
        busy = None if busy is None else busy_seconds() - busy
        # the whole training loop (Trainer.fit: events, the ranks' stop agreement after
        # every step), as `seqgen run` trains, over the same number of steps
        run.trainer.spec["max_steps"] = args.steps
        loop = run.trainer.fit()
        step_ms, compute_ms = (1000 * statistics.mean(step_times),
                               1000 * statistics.mean(compute_times))
        # every rank's numbers, gathered with a sum over slots only one rank fills
        fields = 4
        slots = [0.0] * (fields * world.size)
        slots[fields * world.rank:fields * (world.rank + 1)] = [
            step_ms, compute_ms, 1000 * statistics.median(step_times), mine]
        slots = world.sum(slots)
        allowed = os.sched_getaffinity(0)
        mask = torch.tensor([c in allowed for c in range(os.cpu_count() or 1)])
        cores = world.each(mask)            # every rank's affinity, as a mask over cores
        run.release()                       # drops DDP before the process group goes
    if not world.main:
        return
    per_rank = [dict(zip(("step_ms", "compute_ms", "step_median_ms", "cpu_seconds"),
                         slots[fields * r:fields * (r + 1)])) for r in range(world.size)]
    for r in per_rank:
        r["allreduce_ms"] = r["step_ms"] - r["compute_ms"]
    ours = sum(r["cpu_seconds"] for r in per_rank)
    others = None if busy is None else max(0.0, busy - ours) / (wall * (os.cpu_count() or 1))
    result = {
        "ranks": world.size,
        "threads_per_rank": torch.get_num_threads(),
        "cores": [[c for c, on in enumerate(m.tolist()) if on] for m in cores],
        "rows_per_rank": args.batch // world.size,
        "global_tokens_per_step": tokens / args.steps,
        "steps": args.steps,
        "tokens_per_second": tokens / sum(step_times),
        "loop_tokens_per_second": loop.tokens / loop.seconds,
        "step_ms": step_ms,
        "compute_ms": compute_ms,
        "allreduce_ms": step_ms - compute_ms,
        "per_rank": per_rank,
        "window_seconds": wall,
        "our_cpu_seconds": ours,
        "others_cpu_share": None if others is None else round(others, 3),
        "parameters": run.model.num_parameters(),
    }
    Path(args.result).write_text(json.dumps(result))


# -- parent: launch the workers, report ---------------------------------------------------
def worker_args(args, result: Path) -> list[str]:
    out = [str(Path(__file__).resolve()), "--worker", "--result", str(result),
           "--corpus", str(args.corpus), "--hidden", str(args.hidden),
           "--layers", str(args.layers), "--batch", str(args.batch),
           "--num-steps", str(args.num_steps), "--steps", str(args.steps),
           "--warmup", str(args.warmup)]
    return out + (["--pin"] if args.pin else [])


def launch(args, ranks: int, result: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    if ranks == 1:
        command = [sys.executable] + worker_args(args, result)
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc-per-node", str(ranks)] + worker_args(args, result)
    # the workers' own output (warnings, torchrun's notes) goes to stderr: stdout is the JSON
    done = subprocess.run(command, env=env, stdout=sys.stderr, cwd=Path(__file__).parent.parent)
    if done.returncode != 0 or not result.exists():
        sys.exit(f"ddp_scaling: the {ranks}-rank worker failed (exit {done.returncode}): "
                 f"{' '.join(command)}")
    return json.loads(result.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per kind")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32, help="global batch (even)")
    parser.add_argument("--num-steps", type=int, default=64, help="tokens per row")
    parser.add_argument("--corpus", type=Path, default=SHAKESPEARE)
    parser.add_argument("--pin", action="store_true", help="pin each process to a core")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch % 2:
        parser.error(f"--batch {args.batch}: the global batch must split over 2 ranks")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    if args.worker:
        worker(args)
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ddp_scaling-") as tmp:
        one = launch(args, 1, Path(tmp) / "one.json")
        two = launch(args, 2, Path(tmp) / "two.json")
    speedup = two["tokens_per_second"] / one["tokens_per_second"]
    emit({"benchmark": "ddp_scaling", "cpu_count": os.cpu_count(), "pinned": args.pin,
          "workload": {"corpus": str(args.corpus), "cell": "lstm", "hidden": args.hidden,
                       "layers": args.layers, "global_batch": args.batch,
                       "num_steps": args.num_steps, "parameters": one["parameters"]},
          "steps": args.steps, "warmup": args.warmup,
          "tokens_per_second_1": one["tokens_per_second"],
          "tokens_per_second_2": two["tokens_per_second"],
          "speedup": speedup, "efficiency": speedup / 2,
          "loop_tokens_per_second_1": one["loop_tokens_per_second"],
          "loop_tokens_per_second_2": two["loop_tokens_per_second"],
          "loop_speedup": two["loop_tokens_per_second"] / one["loop_tokens_per_second"],
          "step_ms_1": one["step_ms"],
          "step_ms": two["step_ms"], "compute_ms": two["compute_ms"],
          "allreduce_ms": two["allreduce_ms"],
          "allreduce_share": two["allreduce_ms"] / two["step_ms"],
          "others_cpu_share": {"1": one["others_cpu_share"], "2": two["others_cpu_share"]},
          "one_rank": one, "two_ranks": two,
          "target_speedup": TARGET_SPEEDUP, "meets_target": speedup >= TARGET_SPEEDUP,
          "seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
