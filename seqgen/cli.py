"""The `seqgen` command: a thin shell over `seqgen.api`.

Each command parses options, calls one API function and formats the result. Domain
errors (SeqgenError) become one paragraph on stderr with the error's exit code (2 for
spec and usage errors, 1 for failures during a run); --debug adds the traceback.

Warnings (plugin load failures, run warnings) are log records of the "seqgen" logger
(seqgen/log.py); while a command runs, the CLI's own handler prints them on stderr as
"warning: <message>", and --debug adds the DEBUG records (a failed plugin's traceback).
Nothing else prints them, so each shows once.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import traceback

import click

from .api import Session
from .compose import Origin
from .plugins import strict_error
from .distributed import World
from .errors import SeqgenError
from .log import logger as seqgen_logger
from .progress import Printer


class Failure(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def handle_errors(fn):
    """Turn seqgen errors into clean CLI errors; tracebacks only with --debug."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except SeqgenError as e:
            if debug:
                traceback.print_exc()
            raise Failure(rank_prefix() + str(e), e.exit_code) from None
        except KeyboardInterrupt:  # Ctrl-C outside a run, or a second one: out now, cleanly
            if debug:
                traceback.print_exc()
            raise Failure("interrupted", 130) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:   # `seqgen generate ... | head -c 1`: the reader is gone
            silence_stdout()
            raise click.exceptions.Exit(BROKEN_PIPE) from None
        except OSError as e:   # the file system said no: say what and where, not "a bug"
            if debug:
                traceback.print_exc()
            where = f"{e.filename}: " if e.filename else ""
            raise Failure(f"{where}{e.strerror or e}", 1) from None
        except Exception as e:
            if debug:
                traceback.print_exc()
            raise Failure(f"unexpected {type(e).__name__}: {e} (this is a bug; run with "
                          f"--debug for the traceback)", 1) from None
    return wrapper


def rank_prefix() -> str:
    """"rank R: " in a process torchrun started among several (each prints its own
    errors), else nothing."""
    world = os.environ.get("WORLD_SIZE", "1")
    return f"rank {os.environ.get('RANK', '?')}: " if world not in ("", "1") else ""


class EchoHandler(logging.Handler):
    """Prints seqgen's log records as the CLI prints its other messages: "warning:
    <message>" on stderr (`write` is swapped for a progress bar's while one is shown)."""

    def __init__(self, level: int = logging.WARNING):
        super().__init__(level)
        self.write = lambda text: click.echo(text, err=True)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:
            self.handleError(record)


HANDLER_KEY = "seqgen.log_handler"


def install_handler(ctx: click.Context, debug: bool) -> EchoHandler:
    """Show seqgen's log records for as long as this command runs (removed when it
    ends, so a program that runs the CLI in-process gets its logging back as it was)."""
    handler = EchoHandler(logging.DEBUG if debug else logging.WARNING)
    level = seqgen_logger.level
    seqgen_logger.addHandler(handler)
    if debug:
        seqgen_logger.setLevel(logging.DEBUG)

    def remove() -> None:
        seqgen_logger.removeHandler(handler)
        seqgen_logger.setLevel(level)
    ctx.call_on_close(remove)
    ctx.meta[HANDLER_KEY] = handler
    return handler


def log_handler(ctx: click.Context) -> EchoHandler | None:
    return ctx.meta.get(HANDLER_KEY)


@contextlib.contextmanager
def silenced(handler: EchoHandler | None):
    """No log output from the CLI's handler while the block runs."""
    if handler is None:
        yield
        return
    level = handler.level
    handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        handler.setLevel(level)


def make_session(ctx: click.Context, strict: bool | None = None, warn: bool = True) -> Session:
    """A Session for a command. Its plugin load failures and notes are logged as it is
    made (and so printed once, by the CLI's handler); warn=False keeps them quiet."""
    root = ctx.find_root().params
    with contextlib.nullcontext() if warn else silenced(log_handler(ctx)):
        return Session(strict=root["strict_plugins"] if strict is None else strict)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seqgen")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--strict-plugins", is_flag=True, envvar="SEQGEN_STRICT_PLUGINS",
              help="Fail if any third-party plugin fails to load (env SEQGEN_STRICT_PLUGINS=1).")
def cli(debug: bool, strict_plugins: bool):
    """Train recurrent language models and generate text with them.

    SPEC arguments take a spec file, a preset name (`seqgen presets`), or - for
    standard input. Third-party plugins load from the `seqgen` entry-point group;
    SEQGEN_PLUGINS limits them ("" loads none, "a,b" only those: entry-point or
    distribution names) and SEQGEN_DISABLE_PLUGINS leaves some out.
    """
    ctx = click.get_current_context()
    install_handler(ctx, debug)
    if ctx.invoked_subcommand not in (None, "run") and rank_prefix():
        raise Failure(f"seqgen {ctx.invoked_subcommand} runs in one process; only "
                      f"`seqgen run` trains data-parallel under torchrun", 2)


OVERRIDE = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                        help="Override a spec field, e.g. --set train.epochs=3 (value parsed "
                             "as JSON, else a string). Repeatable.")


SPEC_ARG = click.argument("spec", metavar="SPEC", required=False)


@cli.command()
@SPEC_ARG
@OVERRIDE
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (overrides $.out).")
@click.option("--resume", type=click.Path(file_okay=False), metavar="RUN_DIR",
              help="Continue an interrupted run (overrides may extend it, e.g. train.epochs).")
@click.option("--nproc", type=click.IntRange(1), metavar="N",
              help="Train data-parallel in N processes on this machine: the same as "
                   "torchrun --standalone --nproc-per-node N -m seqgen run ...")
@click.pass_context
@handle_errors
def run(ctx, spec, overrides, out, resume, nproc):
    """Train, evaluate, sample and save the model described by SPEC (a file, a preset
    name, or - for standard input).

    Ctrl-C or SIGTERM saves a checkpoint and prints the command to resume (exit 130).
    Under torchrun (or with --nproc), each process trains on its share of every batch
    and rank 0 writes the run directory.
    """
    if (spec is None) == (resume is None):
        raise click.UsageError("give a SPEC to start a run, or --resume RUN_DIR to continue one")
    if nproc is not None and nproc > 1:
        if rank_prefix():
            raise click.UsageError("--nproc starts torchrun's ranks itself: do not give it "
                                   "to a process that torchrun started")
        launch_ranks(ctx, nproc, spec, overrides, out, resume)
        return
    world = World.from_env()
    if world.distributed and spec == "-":
        raise click.UsageError("SPEC -: standard input reaches one process only; under "
                               "torchrun give the spec as a file or a preset name")
    session = make_session(ctx, warn=world.main)
    printer = Printer()
    started = {}

    def show(event):
        if event.kind == "start":
            started.update(event.data)
        printer(event)

    try:
        with printer.showing_logs(log_handler(ctx)):
            if resume:
                result = session.resume(resume, overrides, emit=show, handle_signals=True,
                                        world=world)
            else:
                result = session.run(spec, overrides, out=out, emit=show,
                                     handle_signals=True, world=world)
    except KeyboardInterrupt:      # a second Ctrl-C: stopped at once, without saving
        if not started:
            raise
        raise Failure(f"interrupted: stopped at once, without saving; continue from the "
                      f"last checkpoint with: seqgen run --resume {started['run_dir']}",
                      130) from None
    finally:
        printer.close()
    if result.interrupted:
        signal_name = result.train.stopped.split(":")[1]
        if world.main:
            click.echo(f"{signal_name}: stopped at step {result.train.step}; checkpoint "
                       f"saved.\nResume with: seqgen run --resume {result.run_dir}", err=True)
        ctx.exit(130)
    if world.main:
        click.echo(f"run directory: {result.run_dir}")


def launch_ranks(ctx, nproc: int, spec, overrides, out, resume) -> None:
    """--nproc N: check what can be checked here (the spec, the batch split), then start
    the N ranks through torch's elastic launcher (seqgen/launch.py)."""
    from .distributed import check_split
    from .launch import child_args, launch
    root = ctx.find_root().params
    args = child_args(spec, overrides, out, resume, debug=root["debug"],
                      strict_plugins=root["strict_plugins"])
    session = make_session(ctx)
    from pathlib import Path
    from .errors import CheckpointError, SpecError
    from .lock import check_free
    if resume is None:
        resolved = session.resolve(spec, overrides)
        if (out or resolved["out"]) is not None:
            check_free(out or resolved["out"])     # as the run would, before launching
            from .paths import check_output_dir
            from .runner import SPEC_FILE
            where = check_output_dir(out or resolved["out"], SPEC_FILE)
            if (where / SPEC_FILE).exists():
                raise SpecError([f"$.out: {where} already holds a run ({SPEC_FILE} exists); "
                                 f"choose another directory with --out, or continue it "
                                 f"with --resume"])
    else:
        stored = Path(resume) / "spec.json"
        if not stored.is_file():
            raise CheckpointError(f"{resume}: not a run directory (spec.json not found)")
        resolved = session.resolve(stored, overrides)
    if resolved is not None:
        check_split(resolved, World(0, nproc))
        import torch
        from .runner import pick_device
        gpus = pick_device(resolved["device"]).type == "cuda"
        room = torch.cuda.device_count() if gpus else os.cpu_count() or 1
        if nproc > room:
            raise click.UsageError(f"--nproc {nproc}: this machine has {room} "
                                   f"{'GPUs' if gpus else 'CPU cores'}; more processes than "
                                   f"that only slow training down")
    launch(nproc, args)


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="PNG to write (default: plot.png in the only run, else plot.png here).")
@handle_errors
def plot(run_dirs, output):
    """Draw loss and perplexity curves of one or more runs (overlaid)."""
    from pathlib import Path
    from .plot import plot_runs
    if output is None:
        output = Path(run_dirs[0]) / "plot.png" if len(run_dirs) == 1 else Path("plot.png")
    click.echo(f"wrote {plot_runs([Path(d) for d in run_dirs], Path(output))}")


@cli.command()
@SPEC_ARG
@OVERRIDE
@click.option("--sweep", "sweep_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="A JSON file holding the sweep object (replaces the spec's \"sweep\").")
@click.option("--out", type=click.Path(file_okay=False),
              help="Comparison directory (default runs/compare-<name>-<timestamp>). An "
                   "existing one is continued: finished variants are not run again.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1),
              help="Variants run at once, in separate processes (no gain on 2 cores).")
@click.option("--report-only", type=click.Path(file_okay=False, exists=True), metavar="DIR",
              help="Rebuild the report of an existing comparison directory; train nothing.")
@click.pass_context
@handle_errors
def compare(ctx, spec, overrides, sweep_file, out, jobs, report_only):
    """Train every variant of SPEC's sweep and compare them side by side.

    Writes report.md, report.csv, curves.png and decoding.md into the comparison
    directory and prints the table. Ctrl-C or SIGTERM stops the sweep with checkpoints
    saved and prints the command that continues it (exit 130).
    """
    import shlex
    if (spec is None) == (report_only is None):
        raise click.UsageError("give a SPEC to run a comparison, or --report-only DIR")
    session = make_session(ctx)
    printer = Printer()

    def show(event):
        d = event.data
        if event.kind == "variant":
            printer.echo(f"== variant {d['index']}/{d['total']} {d['name']}: {d['action']} "
                         f"({d['run_dir']})")
        elif event.kind == "variant_end":
            printer.echo(f"== {d['name']}: {d['stopped']} at step {d['step']}")
        printer(event)

    try:
        with printer.showing_logs(log_handler(ctx)):
            result = (session.compare(None, out=report_only, report_only=True) if report_only
                      else session.compare(spec, overrides, out, jobs, show, sweep_file,
                                           handle_signals=True))
    finally:
        printer.close()
    if result.interrupted:
        again = ["seqgen", "compare", spec, *(a for o in overrides for a in ("--set", o)),
                 *(("--sweep", sweep_file) if sweep_file else ()), "--out", str(result.out),
                 *(("--jobs", str(jobs)) if jobs > 1 else ())]
        where = f" in variant {result.variant}" if result.variant else ""
        click.echo(f"{result.interrupted}: sweep stopped{where}; checkpoints saved.\n"
                   f"Continue with: {shlex.join(again)}", err=True)
        ctx.exit(130)
    report = result.report
    click.echo(f"\n{report.table}\n\nreport: {report.markdown} ({report.csv.name}, "
               f"decoding.md{', curves.png' if report.curves else ''})")


@cli.command()
@click.argument("spec", metavar="SPEC")
@OVERRIDE
@click.option("--resolved", is_flag=True, help="Print the resolved spec with defaults filled.")
@click.option("--explain", is_flag=True,
              help="Print every field with where its value came from (preset, file, "
                   "override or default), and the plugin behind every component.")
@click.option("--json", "as_json", is_flag=True, help="With --explain: machine-readable.")
@click.pass_context
@handle_errors
def validate(ctx, spec, overrides, resolved, explain, as_json):
    """Check SPEC (a file, a preset name, or -) against the schema and every component's
    options, without running."""
    if as_json and not explain or resolved and explain:
        raise click.UsageError("--json goes with --explain, and --resolved without it")
    session = make_session(ctx)
    if explain:
        report = session.explain(spec, overrides)
        if as_json:
            click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            click.echo(format_explanation(report))
        return
    result = session.resolve(spec, overrides)
    if resolved:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        click.echo(f"{spec}: valid")


@cli.command()
@click.argument("spec", metavar="SPEC")
@OVERRIDE
@click.option("--top", type=click.IntRange(1), default=10, show_default=True,
              help="How many most and least frequent tokens to list.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def data(ctx, spec, overrides, top, as_json):
    """Print statistics of SPEC's corpus as training will see it: size, vocabulary, the
    most and least frequent tokens, coverage of the top-N tokens, and sequence lengths
    for line and pair datasets. Nothing is trained or written."""
    from .corpus_stats import describe
    stats = make_session(ctx).data_stats(spec, overrides, top=top)
    click.echo(json.dumps(stats, indent=2, ensure_ascii=False) if as_json else describe(stats))


def format_explanation(report: dict) -> str:
    fields = report["fields"]
    width = max(len(f["path"]) for f in fields)
    values = [json.dumps(f["value"], ensure_ascii=False) for f in fields]
    vwidth = min(30, max(len(v) for v in values))
    lines = ["fields:"]
    for f, v in zip(fields, values):
        origin = Origin(f["source"], f.get("name", "")).describe()
        lines.append(f"  {f['path']:<{width}}  {v:<{vwidth}}  {origin}")
    lines.append("components:")
    for c in report["components"]:
        lines.append(f"  {c['path']:<{width}}  {c['kind']} {c['name']!r} from plugin "
                     f"{c['plugin']} ({c['distribution']} {c['version']})".rstrip())
    return "\n".join(lines)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def presets(ctx, as_json):
    """List presets: named specs to run (`seqgen run NAME`), extend (`"extends": NAME`)
    or start from (`seqgen init NAME`)."""
    rows = make_session(ctx).presets()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max((len(r["name"]) for r in rows), default=0)
    for r in rows:
        click.echo(f"{r['name']:<{width}}  {r['description']}  [{r['plugin']}]")
        for field, what in r["needs"].items():
            click.echo(f"{'':<{width}}  needs --set {field}=...: {what}")


@cli.command()
@click.argument("preset", default="quickstart")
@OVERRIDE
@click.option("-o", "--output", default="spec.json", show_default=True,
              help="Spec file to write (- for standard output). Its schema is written "
                   "beside it as seqgen.schema.json, for editors.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_context
@handle_errors
def init(ctx, preset, overrides, output, force):
    """Write a complete starting spec from PRESET (default quickstart): every field
    filled and described, linked to its JSON Schema."""
    from pathlib import Path

    from .atomic import write_text
    from .spec import spec_text
    from .starter import starting_spec
    session = make_session(ctx)
    if output == "-":
        click.echo(spec_text(starting_spec(session, preset, overrides)), nl=False)
        return
    target = Path(output)
    if target.is_dir() or not target.name:
        raise click.UsageError(f"-o {output!r} is a directory; give a file name, e.g. "
                               f"{Path(output) / 'spec.json'}")
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; choose another -o, or add --force")
    spec = starting_spec(session, preset, overrides, schema_link="./seqgen.schema.json")
    write_text(target, spec_text(spec))      # the spec first: if it fails, nothing is written
    write_text(target.parent / "seqgen.schema.json",
               json.dumps(session.schema(), indent=2, ensure_ascii=False) + "\n")
    click.echo(f"wrote {target} (from preset {preset!r}) and its schema "
               f"{target.parent / 'seqgen.schema.json'}; run it with: seqgen run {target}")


@cli.command()
@click.pass_context
@handle_errors
def schema(ctx):
    """Print the JSON Schema of specs, with every installed plugin's options."""
    click.echo(json.dumps(make_session(ctx).schema(), indent=2, ensure_ascii=False))


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def plugins(ctx, as_json):
    """List plugins (version, hooks, components, presets) and load failures;
    `seqgen plugins new` scaffolds a plugin package."""
    if ctx.invoked_subcommand is not None:
        return
    strict = ctx.find_root().params["strict_plugins"]
    session = make_session(ctx, strict=False, warn=not strict)  # list all, even when strict
    info = session.plugins()
    click.echo(json.dumps(info, indent=2) if as_json else format_plugins(info))
    if strict and session.load_failures:
        raise strict_error(session.load_failures)


def format_plugins(info: dict) -> str:
    lines = []
    for p in info["plugins"]:
        version = f" {p['version']}" if p["version"] else ""
        lines.append(f"{p['name']} ({p['distribution']}{version}; hooks: {', '.join(p['hooks'])})")
        for c in p["components"]:
            replaced = f" [replaces {c['replaces']}]" if c.get("replaces") else ""
            lines.append(f"  {c['kind']:<9} {c['name']:<16} {c['description']}{replaced}")
        if p["presets"]:
            lines.append(f"  {'presets':<9} {', '.join(p['presets'])}")
    for f in info["failures"]:
        label = "PROBLEM" if f["partial"] else "FAILED"
        lines.append(f"{label} {f['name']} (distribution {f['distribution']}): {f['error']}")
    lines += [f"WARNING {note}" for note in info["warnings"]]
    return "\n".join(lines)


@plugins.command(name="new")
@click.argument("kind", type=click.Choice(["cell", "dataset", "sampler", "strategy"]))
@click.argument("name")
@click.option("-o", "--output", "out", type=click.Path(file_okay=False),
              help="Directory to create (default: seqgen-NAME).")
@handle_errors
def plugins_new(kind, name, out):
    """Scaffold an installable plugin package adding one KIND named NAME: pyproject with
    the entry point, options schema, implementation, README and a contract test."""
    from .scaffold import scaffold
    where = scaffold(kind, name, out)
    click.echo(f"created {where}\nnext: pip install -e {where} && pytest {where}")


def on_unknown_option(help_text: str):
    """--on-unknown, as generate, eval and inspect take it."""
    return click.option("--on-unknown", type=click.Choice(["error", "skip", "unk"]),
                        default="error", show_default=True, help=help_text)


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--prompt", "prompts", multiple=True, help="Text to continue. Repeatable.")
@click.option("--strategy", default="greedy", show_default=True,
              help="Decoding strategy name (`seqgen plugins` lists them).")
@click.option("--set", "options", multiple=True, metavar="KEY=VALUE",
              help="A strategy option, e.g. --set temperature=0.7. Repeatable.")
@click.option("--num-samples", default=1, show_default=True, type=click.IntRange(1),
              help="Samples per prompt (beam: the best sequences, at most its width).")
@click.option("--max-new-tokens", default=100, show_default=True, type=click.IntRange(0),
              help="Longest continuation (translations: twice the longest source + 10 "
                   "unless given).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--stop", "stops", multiple=True, metavar="TEXT",
              help="End a sample at this text; it is cut before it. Repeatable.")
@click.option("--stream", is_flag=True,
              help="Print the text as it is generated (one prompt, one sample).")
@click.option("--unk-text", metavar="TEXT",
              help="How a generated <unk> reads  [default: the run's generate.unk_text]")
@click.option("--source", "sources", multiple=True, metavar="TEXT",
              help="Encoder-decoder models: a source to translate. Repeatable.")
@click.option("--source-file", type=click.Path(dir_okay=False),
              help="Encoder-decoder models: translate every line of this file (one source per "
                   "line), printing one translation per line (n-best: n lines per source).")
@click.option("--n-best", "-n_best", "n_best", type=click.IntRange(1),
              help="Translations per source (as --num-samples; beam search: at most its width).")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1),
              help="Sources decoded together (--source-file).")
@click.option("--attention-plot", type=click.Path(dir_okay=False), metavar="PNG",
              help="Encoder-decoder models: draw the attention over the source as a heatmap "
                   "PNG (several translations: NAME-1.png, NAME-2.png, ... in output order).")
@on_unknown_option("Prompt characters outside the vocabulary.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def generate(ctx, checkpoint, prompts, strategy, options, num_samples, max_new_tokens, seed,
             stops, stream, unk_text, sources, source_file, n_best, batch_size, attention_plot,
             on_unknown, as_json):
    """Generate text from a trained CHECKPOINT (a .safetensors file or a run directory);
    with an encoder-decoder model, translate --source texts or a --source-file.

    Options with no effect in the chosen combination are reported as warnings on stderr.
    Strategies that score (beam, teacher-forcing with --set reference=TEXT) also print
    each sample's score and perplexity.
    """
    import warnings

    from .data import CAUSAL_TASKS
    from .spec import apply_overrides
    if stream and (len(prompts) > 1 or num_samples > 1 or as_json):
        raise click.UsageError("--stream prints one sample as it is generated: give at most "
                               "one --prompt, --num-samples 1, and no --json")
    model = make_session(ctx).load(checkpoint)
    if unk_text is not None:
        model = model.showing_unk_as(unk_text)
    chosen = model.strategy(apply_overrides({"type": strategy}, list(options)))
    if model.generator.task == "seq2seq" or sources or source_file or attention_plot:
        from .translate_cli import translate
        if prompts or stream:
            raise click.UsageError("an encoder-decoder model translates sources: give them "
                                   "with --source TEXT or --source-file FILE (not --prompt "
                                   "or --stream)")
        translate(model, chosen, list(sources), source_file, n_best or num_samples,
                  None if ctx.get_parameter_source("max_new_tokens").name == "DEFAULT"
                  else max_new_tokens, seed, on_unknown, stops, batch_size, attention_plot,
                  as_json)
        return
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        if stream:
            pieces = model.stream(prompts[0] if prompts else "", chosen, max_new_tokens, seed,
                                  on_unknown, stop=stops)
        else:
            samples = model.generate(list(prompts) or [""], chosen, max_new_tokens,
                                     num_samples, seed, on_unknown, stop=stops)
    for note in notes:
        click.echo(f"warning: {note.message}", err=True)
    if stream:
        prompt = prompts[0] if prompts else ""
        click.echo(prompt, nl=False)
        for i, piece in enumerate(pieces):
            click.echo(model.vocab.continuation(prompt, piece) if i == 0 else piece, nl=False)
        click.echo("")
    elif as_json:
        click.echo(json.dumps([s.to_dict() for s in samples], ensure_ascii=False, indent=2))
    elif model.generator.task not in CAUSAL_TASKS:     # a mapping: input, then its output
        for s in samples:
            click.echo(f"{s.prompt} -> {s.text}")
    else:
        for s in samples:
            click.echo(s.prompt + model.vocab.continuation(s.prompt, s.text))
            if chosen.search is not None and s.perplexity is not None:
                click.echo(f"[score {s.score:.4f}, perplexity {s.perplexity:.3f}]")
            click.echo("")


@cli.command(name="eval")
@click.argument("checkpoint", type=click.Path())
@click.option("--text", "text_file", required=True, type=click.Path(dir_okay=False),
              help="UTF-8 text file to score.")
@on_unknown_option("Tokens outside the vocabulary: refuse them, drop them, or score "
                   "them as <unk>.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def eval_(ctx, checkpoint, text_file, on_unknown, as_json):
    """Report the perplexity of CHECKPOINT on the text in a file, preprocessed as the
    run's training text was (its newlines and lowercase options travel with the
    vocabulary)."""
    from .text_io import read_text
    model = make_session(ctx).load(checkpoint)
    score = model.score(read_text(text_file), on_unknown)
    if as_json:
        click.echo(json.dumps(score.to_dict()))
    else:
        click.echo(f"{text_file}: {score.tokens} tokens, loss {score.loss:.4f} nats, "
                   f"perplexity {score.perplexity:.3f}")


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--text", "text", metavar="TEXT", help="Text to read through the model.")
@click.option("--file", "text_file", type=click.Path(dir_okay=False),
              help="A UTF-8 file to read instead of --text.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Directory for the files  [default: inspect/ beside the checkpoint]")
@click.option("--top-k", default=5, show_default=True, type=click.IntRange(1),
              help="Guesses recorded per token.")
@click.option("--units", default=16, show_default=True, type=click.IntRange(1),
              help="Units per heatmap panel: those that vary most over the text.")
@on_unknown_option("Tokens outside the vocabulary.")
@click.option("--json", "as_json", is_flag=True, help="Print the paths written as JSON.")
@click.pass_context
@handle_errors
def inspect(ctx, checkpoint, text, text_file, out, top_k, units, on_unknown, as_json):
    """See inside CHECKPOINT (a .safetensors file or a run directory) as it reads a text:
    every layer's gates and states per token, and how surprised the model is by each.

    Writes inspect.json (the data), a heatmap PNG per layer, and inspect.html, a page
    that works from the file alone: the text coloured by surprise, the model's top
    guesses on hover, and a unit picker that colours the text by one unit instead.
    """
    from .events import json_line
    from .inspection import write_inspection
    from .text_io import read_text
    if (text is None) == (text_file is None):
        raise click.UsageError("give the text to read: --text TEXT or --file FILE (one)")
    if out == "":
        raise click.UsageError("--out is empty: name a directory, or leave it out")
    model = make_session(ctx).load(checkpoint)
    inspection = model.inspect(read_text(text_file) if text_file else text, on_unknown,
                               top_k=top_k)
    written = write_inspection(inspection, out or model.path.parent / "inspect", units)
    paths = [written["json"], written["html"], *written["heatmaps"]]
    if as_json:
        click.echo(json_line({"tokens": len(inspection.tokens),      # inf as "inf"
                              "mean_surprise": inspection.mean_surprise(),
                              "files": [str(p) for p in paths]}))
        return
    layers = len({layer.layer for layer in inspection.layers})
    mean = inspection.mean_surprise()
    click.echo(f"read {len(inspection.tokens)} tokens through {inspection.cell} "
               f"({layers} layer{'s' if layers != 1 else ''})"
               + ("" if mean is None else f": mean surprise {mean:.3f} nats"))
    for path in paths:
        click.echo(f"wrote {path}")


# A reader that closes standard output early (`seqgen generate ... | head -c 1`) ends the
# command quietly with 141 = 128 + SIGPIPE, what a shell reports for `cat` or `yes` in
# its place: no message, no traceback, no "Exception ignored" at exit.
BROKEN_PIPE = 141


# `seqgen serve`: its module imports no server library until the command runs.
from .serve.command import serve as serve_command  # noqa: E402
cli.add_command(serve_command)


def silence_stdout() -> None:
    """Point standard output at the null device, so that what is still buffered for the
    closed pipe (flushed at exit) goes nowhere instead of raising again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):     # not a real file (e.g. CliRunner)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv=None) -> None:
    try:
        try:
            cli.main(args=argv, prog_name="seqgen")
        finally:
            sys.stdout.flush()       # a broken pipe shows here, not at interpreter exit
    except BrokenPipeError:
        silence_stdout()
        sys.exit(BROKEN_PIPE)


if __name__ == "__main__":
    main(sys.argv[1:])
