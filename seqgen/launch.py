"""`seqgen run SPEC --nproc N`: torchrun's job, started through torch's own launcher.

It is exactly

    torchrun --standalone --nproc-per-node N -m seqgen run SPEC [the same options]

run in this process through `torch.distributed.run` (the elastic agent behind the
torchrun command): seqgen has no launcher of its own. The agent starts N ranks on this
machine with a c10d rendezvous on localhost, forwards Ctrl-C and SIGTERM to them (they
agree on a step, save one checkpoint and exit 130), and when a rank dies it stops the
others. For several machines, run torchrun yourself (README: "Training on several
processes").

Each rank gets OMP_NUM_THREADS = cores / N unless it is set (torch would otherwise use
every core in every rank, and N ranks would fight over them).
"""
from __future__ import annotations

import os

from .errors import SeqgenError, SpecError, TrainingError


def child_args(spec: str | None, overrides, out: str | None, resume: str | None, *,
               debug: bool = False, strict_plugins: bool = False) -> list[str]:
    """The `seqgen ...` arguments each rank runs: this command without --nproc."""
    if spec == "-":
        raise SpecError(["SPEC: standard input reaches one process only; with --nproc, "
                         "give the spec as a file or a preset name"])
    args = (["--debug"] if debug else []) + (["--strict-plugins"] if strict_plugins else [])
    args.append("run")
    if spec is not None:
        args.append(spec)
    for override in overrides:
        args += ["--set", override]
    if out is not None:
        args += ["--out", out]
    if resume is not None:
        args += ["--resume", resume]
    return args


def launch(nproc: int, args: list[str]) -> None:
    """Run `python -m seqgen ARGS` as `nproc` ranks under torch's elastic agent; return
    when every rank succeeded, else raise an error naming the first rank that failed,
    with its exit code (130 when the ranks stopped on a signal)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--module", "seqgen", *args])
    try:
        run(config)
    except ChildFailedError as e:
        codes = {f.exitcode for f in e.failures.values()}
        rank, failure = e.get_first_failure()
        if codes == {130}:
            raise stopped(130, f"all {nproc} ranks stopped on a signal (see above)") from None
        raise stopped(failure.exitcode if failure.exitcode > 0 else 1,
                      f"rank {rank} of {nproc} failed first (exit code {failure.exitcode}"
                      f"{signal_name(failure)}); its message is above") from None
    except SignalException as e:
        raise stopped(130, f"{e.sigval.name}: the {nproc} ranks were told to stop "
                           f"(see above for where they stopped)") from None


def signal_name(failure) -> str:
    try:
        return f", {failure.signal_name()}" if failure.exitcode < 0 else ""
    except Exception:                 # the failure record may not say
        return ""


def stopped(code: int, message: str) -> SeqgenError:
    """An error with the ranks' exit code (the CLI exits with it)."""
    error = TrainingError(message)
    error.exit_code = code
    return error
