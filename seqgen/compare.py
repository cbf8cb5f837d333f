"""Running the variants of a sweep, each in its own run directory, and continuing a sweep.

    OUT/                  default runs/compare-<name>-<timestamp>
      compare.json        the expanded sweep: each variant's name and the fields it sets
      <variant>/          an ordinary run directory (spec.json, last/best.safetensors, ...)
      report.md, report.csv, curves.png, decoding.md        (seqgen/report.py)

Running again with the same OUT continues the sweep: a variant whose run finished (its
last checkpoint says done, early-stopping, max-steps or time-limit, and samples.json
exists) is not run again, an interrupted one is resumed from last.safetensors, the rest
run. A variant directory holding a different spec is an error, never a silent mix.

jobs > 1 runs that many variants at once in spawned processes, with cores // jobs torch
threads each. Every variant gets a Session made like this one (`Session.config`: the
same built-ins, entry points, strict, env and runs_dir, and the same plugins given
directly). Those plugins travel to the workers: a module by its importable name (the
worker imports it again), any other object by pickle (a class, function or instance
defined at module level in an importable module pickles fine). One that cannot travel
(a lambda, a class or function defined inside a function, an instance holding a lock
or an open file, a module made at run time with types.ModuleType, or one loaded from
a folder not on sys.path) is a PluginError naming it, before anything is written or
any worker starts: use jobs=1, or move the plugin into an importable module. Workers
see this process's sys.path and environment, as spawned processes do. On two cores
jobs > 1 gains nothing: one run already keeps both busy.
"""
from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import pickle
import pickletools
import signal
import sys
import time
import types
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from . import checkpoint as ckpt
from .atomic import remove_temp_files, write_text
from .errors import PluginError, SeqgenError, SpecError, TrainingError
from .events import Emit, Event, ignore
from .interrupt import Interrupted, StopRequest, stop_on_signals
from .paths import check_output_dir
from .report import Report, write_report
from .runner import SAMPLES_FILE, SPEC_FILE, RunResult
from .spec import load_spec_file
from .sweep import Variant, expand

if TYPE_CHECKING:
    from .api import Session

MANIFEST = "compare.json"
FINISHED = ("done", "early-stopping", "max-steps", "time-limit")


@dataclass
class CompareResult:
    """What Session.compare returns. out: the comparison directory. report: the written
    Report, None when the sweep was interrupted. interrupted: what stopped it ("SIGINT",
    "cancel"), else None. variant: the variant it stopped in, if one was running.
    rows (property): the report's rows, [] without one."""
    out: Path
    report: Report | None = None       # None when the sweep was interrupted
    interrupted: str | None = None     # the signal ("SIGINT") that stopped the sweep
    variant: str | None = None         # the variant it stopped in, if one was running

    @property
    def rows(self) -> list[dict]:
        return self.report.rows if self.report else []


def compare(session: "Session", spec: dict | str | Path, overrides: Iterable[str] = (),
            out: str | Path | None = None, jobs: int = 1, emit: Emit | None = None,
            sweep: dict | str | Path | None = None, *, handle_signals: bool = False,
            cancel=None, should_stop=None) -> CompareResult:
    """Validate every variant, run (or continue) them under OUT, and write the report.

    handle_signals: SIGINT/SIGTERM stop the sweep (the CLI asks; a library call leaves
    the process's handlers alone). cancel / should_stop stop it as they stop a run.

    emit gets every event of the runs (jobs=1 only) and, around each variant,
    "variant" {name, index, total, action, run_dir} and "variant_end" {name, stopped, step}.
    """
    if spec is None:
        raise SpecError(["compare needs a spec (or report_only with out)"])
    source = None if isinstance(spec, dict) else str(spec)
    # extends and --set applied; ${...} only per variant, after the sweep sets its fields
    spec = session.compose(spec, overrides, interpolating=False).spec
    if sweep is not None and not isinstance(sweep, dict):
        sweep = load_spec_file(sweep)
    if sweep is None and "sweep" not in spec:
        raise SpecError(["$.sweep: missing; compare runs the variants a sweep names. Add "
                         "one to the spec, e.g. \"sweep\": {\"grid\": {\"model.cell.type\": "
                         "[\"rnn\", \"gru\", \"lstm\"]}} (or \"sweep\": {} to compare "
                         "the spec's generate.strategies alone), or give one with --sweep "
                         "FILE"], source=source)
    plan = expand(session, spec, sweep, source)
    config = worker_config(session) if jobs > 1 else None   # refuse before writing anything
    out = Path(out) if out is not None else default_out(plan.name, session.runs_dir)
    check_output_dir(out, MANIFEST, "--out")   # new, empty, or a comparison to continue
    todo = plan_actions(plan.variants, out)
    out.mkdir(parents=True, exist_ok=True)
    remove_temp_files(out)                     # what a kill mid-write left (variants: theirs)
    manifest = plan.manifest()
    write_text(out / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    emit = emit or ignore
    request = StopRequest(cancel, should_stop)
    with stop_on_signals(request, install=handle_signals):
        stopped = (run_parallel(todo, emit, jobs, config, request) if jobs > 1 else
                   run_sequential(session, todo, emit, request))
    if stopped:
        return CompareResult(out, None, *stopped)
    return CompareResult(out, write_report(session, out, manifest))


def report_only(session: "Session", out: str | Path) -> CompareResult:
    """Rebuild the report of an existing OUT from its run directories; trains nothing."""
    if out is None:
        raise SpecError(["rebuilding a report needs out, the comparison directory"])
    out = Path(out)
    return CompareResult(out, write_report(session, out, read_manifest(out)))


def read_manifest(out: Path) -> dict:
    path = out / MANIFEST
    if not path.is_file():
        raise SeqgenError(f"{out}: not a comparison directory ({MANIFEST} not found)")
    manifest = read_json(path)
    try:
        ok = (isinstance(manifest["name"], str) and isinstance(manifest["fields"], list)
              and isinstance(manifest["sample_tokens"], int)
              and all(isinstance(v["name"], str) and isinstance(v["set"], dict)
                      for v in manifest["variants"]))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise SeqgenError(f"{path}: damaged (expected name, fields, sample_tokens and "
                          f"variants with name and set); rerun the comparison to rewrite it")
    return manifest


def read_json(path: Path):
    """A JSON file this module wrote; damage is an error naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SeqgenError(f"{path}: not valid JSON ({e})") from None


def default_out(name: str, runs_dir: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = Path(runs_dir) / f"compare-{name}-{stamp}", 1
    while out.exists():
        n += 1
        out = Path(runs_dir) / f"compare-{name}-{stamp}-{n}"
    return out


# -- what each variant needs ---------------------------------------------------------------
def plan_actions(variants: list[Variant], out: Path) -> list[tuple[Variant, Path, str]]:
    """(variant, run_dir, action): "run", "resume", "restart" or "skip". Raises one
    SpecError for every variant directory that holds another spec."""
    todo, problems = [], []
    for v in variants:
        run_dir = out / v.name
        if not (run_dir / SPEC_FILE).is_file():
            todo.append((v, run_dir, "run"))
            continue
        stored = read_json(run_dir / SPEC_FILE)
        if stored != v.spec:
            problems.append(f"{v.name}: {run_dir} holds a run of another spec (differs at "
                            f"{', '.join(differences(stored, v.spec))}); use another --out")
            continue
        todo.append((v, run_dir, action(run_dir)))
    if problems:
        raise SpecError(problems)
    return todo


def action(run_dir: Path) -> str:
    last = run_dir / ckpt.LAST_FILE
    if not last.is_file():
        return "restart"            # stopped before its first checkpoint: nothing to resume
    try:
        stopped = ckpt.load(last).state["trainer"]["progress"]["stopped"]
    except (KeyError, TypeError):
        raise SeqgenError(f"{last}: holds no training state; delete {run_dir} to run this "
                          f"variant again") from None
    if stopped not in FINISHED:
        return "resume"
    if not (run_dir / SAMPLES_FILE).is_file():
        raise TrainingError(f"{run_dir}: training finished but the run did not (no "
                            f"{SAMPLES_FILE}); delete {run_dir} to train it again")
    return "skip"


def differences(a, b, path: str = "$") -> list[str]:
    """The JSON paths where two specs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in dict.fromkeys([*a, *b])
                for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    return [] if a == b else [path]


def execute(session: "Session", spec: dict, run_dir: Path, what: str, emit: Emit,
            stop: StopRequest | None = None) -> RunResult:
    should_stop = None if stop is None else stop.__bool__    # the sweep's stop stops the run
    if what in ("resume", "restart"):   # restart: resume starts it again, under its lock
        return session.resume(run_dir, emit=emit, should_stop=should_stop)
    return session.run(spec, out=run_dir, emit=emit, should_stop=should_stop)


def announce(emit: Emit, i: int, todo: list, what: str | None = None) -> None:
    variant, run_dir, planned = todo[i]
    emit(Event("variant", {"name": variant.name, "index": i + 1, "total": len(todo),
                           "action": what or planned, "run_dir": str(run_dir)}))


def finished(emit: Emit, name: str, stopped: str, step: int) -> tuple[str, str] | None:
    """Report a variant's end; (signal, name) when it was interrupted."""
    emit(Event("variant_end", {"name": name, "stopped": stopped, "step": step}))
    return (stopped.split(":")[1], name) if stopped.startswith("interrupted") else None


# -- running ------------------------------------------------------------------------------
# The sweep's stop request (signals when the caller asked for them, cancel, should_stop;
# seqgen/interrupt.py) reaches each run it makes: a stop while a run starts stops it
# before it writes anything (Interrupted), one while it trains stops it at the next step
# with a checkpoint, one while it samples lets it finish; either way no further variant
# starts.
def run_sequential(session: "Session", todo: list, emit: Emit, stop: StopRequest) -> tuple | None:
    for i, (variant, run_dir, what) in enumerate(todo):
        if stop:
            return stop.signal, None
        announce(emit, i, todo)
        if what == "skip":
            continue
        try:
            result = execute(session, variant.spec, run_dir, what, emit, stop)
        except Interrupted as e:
            return e.signal, variant.name
        if interrupted := finished(emit, variant.name, result.train.stopped,
                                   result.train.step):
            return interrupted
    return (stop.signal, None) if stop else None


def run_parallel(todo: list, emit: Emit, jobs: int, config: dict | None,
                 stop: StopRequest) -> tuple | None:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, initargs=(threads, config or {}))
    # Submitted one per free worker: the pool's own queue marks calls as running before
    # they start, and those could no longer be cancelled when the sweep is stopped.
    waiting = [i for i, (_, _, what) in enumerate(todo) if what != "skip"]
    interrupted, pending = None, {}
    try:
        for i, (_, _, what) in enumerate(todo):
            if what == "skip":
                announce(emit, i, todo)
        while waiting or pending:
            while waiting and len(pending) < jobs and not (stop or interrupted):
                i = waiting.pop(0)
                variant, run_dir, what = todo[i]
                announce(emit, i, todo)
                pending[pool.submit(work, variant.spec, str(run_dir), what)] = variant.name
            if not pending:
                break
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                ended = finished(emit, pending.pop(future), *future.result())
                interrupted = interrupted or ended
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return interrupted or ((stop.signal, None) if stop else None)


_config: dict = {}      # in a worker: the parent session's configuration, as sent


def init_worker(threads: int, config: dict | None = None) -> None:
    # Ctrl-C reaches every process of the terminal's group; an idle worker ignores it
    # (the parent cancels what is queued), a busy one stops its run as above.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch
    torch.set_num_threads(threads)
    global _config
    _config = config or {}      # rebuilt per variant, in `work`, where errors travel back


def work(spec: dict, run_dir: str, what: str) -> tuple[str, int]:
    from .api import Session
    with stop_on_signals():
        try:
            result = execute(Session(**session_options(_config)), spec, Path(run_dir), what,
                             ignore)
        except Interrupted as e:
            return f"interrupted:{e.signal}", 0
    return result.train.stopped, result.train.step


# -- the session's configuration, sent to the workers -----------------------------------------
# What a worker gets: the Session's config with each plugin as ("module", importable name)
# or ("object", the plugin, its label), which the process pool's own transport carries.
# Checked here, in the parent, so that a plugin that cannot travel is one clear error
# before any worker starts, not a failure in every worker. seqgen itself never unpickles
# anything: only multiprocessing does, with objects this process made.
def worker_config(session: "Session") -> dict:
    """`session.config` in a form a spawned worker can rebuild (see `session_options`);
    a PluginError names a plugin that cannot be sent, and why."""
    config = dict(getattr(session, "config", None) or {})   # older Session: defaults only
    plugins = tuple(config.pop("plugins", ()))
    config["plugins"] = [_sendable(plugin, i) for i, plugin in enumerate(plugins)]
    return config


def session_options(config: dict) -> dict:
    """Keyword arguments for Session(...) from what `worker_config` made (in a worker)."""
    options = dict(config)
    options["plugins"] = [_received(item) for item in options.get("plugins", ())]
    return options


def _label(plugin: Any, index: int) -> str:
    name = getattr(plugin, "__name__", None)          # as seqgen.plugins names it
    if isinstance(plugin, types.ModuleType):
        return f"plugin module {name!r}"
    if name is not None:
        return f"plugin {getattr(plugin, '__qualname__', name)!r}"
    return f"plugin {type(plugin).__name__}-{index} ({_short(plugin)})"


def _refuse(plugin: Any, index: int, why: str) -> PluginError:
    return PluginError(f"compare with jobs > 1: {_label(plugin, index)} cannot be sent to the "
                       f"worker processes: {why}. Run with jobs=1, or define the plugin at "
                       f"module level in an importable module (on sys.path)")


def _sendable(plugin: Any, index: int) -> tuple:
    if isinstance(plugin, types.ModuleType):
        spec = getattr(plugin, "__spec__", None)
        name = getattr(spec, "name", None)
        if name is None and plugin is sys.modules.get("__main__"):
            if getattr(plugin, "__file__", None):
                return ("module", "__main__")   # spawn runs the main script in each worker
            raise _refuse(plugin, index, "it is the __main__ of an interactive session")
        if name is None:
            raise _refuse(plugin, index, "it was made at run time (it has no __spec__, e.g. "
                                         "types.ModuleType), so there is nothing to import")
        if (problem := _import_problem(name)) is not None:
            raise _refuse(plugin, index, f"a worker cannot import it by its name {name!r}: "
                                         f"{problem}")
        return ("module", name)
    try:   # only to check it can travel; protocol 3: every global is a GLOBAL opcode
        data = pickle.dumps(plugin, protocol=3)
    except Exception as e:
        raise _refuse(plugin, index, f"it cannot be pickled ({type(e).__name__}: {e})") from e
    for module in _modules_named(data):
        if (problem := _import_problem(module)) is not None:
            raise _refuse(plugin, index, f"it refers to module {module!r}, which a worker "
                                         f"cannot import: {problem}")
    return ("object", plugin, _label(plugin, index))


def _received(item) -> Any:
    kind, value = item[0], item[1]
    if kind == "object":
        return value
    try:
        return importlib.import_module(value)
    except Exception as e:
        raise PluginError(f"compare with jobs > 1: plugin module {value!r} could not be "
                          f"imported in a worker process ({type(e).__name__}: {e}); run with "
                          f"jobs=1") from None


def _modules_named(data: bytes) -> set[str]:
    """The modules a protocol-3 pickle imports to rebuild its object."""
    return {arg.split(" ", 1)[0] for op, arg, _ in pickletools.genops(data)
            if op.name in ("GLOBAL", "INST")}


def _import_problem(name: str) -> str | None:
    """None when a fresh process with this sys.path can import module `name`, else why
    not. Asks the import system's finders, not sys.modules: a module put there by hand is
    not importable elsewhere."""
    if name == "__main__":
        main = sys.modules.get("__main__")
        return None if getattr(main, "__file__", None) else "it is an interactive __main__"
    parent, _, _ = name.rpartition(".")
    path = None
    if parent:
        if (problem := _import_problem(parent)) is not None:
            return problem
        path = getattr(sys.modules.get(parent) or importlib.import_module(parent), "__path__",
                       None)
        if path is None:
            return f"{parent!r} is not a package"
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        try:
            if find is not None and find(name, path) is not None:
                return None
        except Exception:      # a finder that cannot answer for this name
            continue
    module = sys.modules.get(name)
    where = getattr(module, "__file__", None)
    return ("no module of that name is on sys.path" if where is None else
            f"it was loaded from {where}, which is not found under that name on sys.path")


def _short(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 60 else text[:57] + "..."
