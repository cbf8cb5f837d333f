"""The Python API: a `Session` holds one set of plugins and runs specs with them.

There is no global state: each Session has its own plugin manager and registry, so two
sessions with different plugins coexist in one process. The CLI is a thin shell over
this module.
"""
from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from . import checkpoint as ckpt
from .atomic import write_text
from .components import KIND_BY_NAME, Component
from .errors import CheckpointError, PluginError, SeqgenError, SpecError, TrainingError
from .events import Emit, Event
from .interrupt import StopRequest, check, stop_on_signals
from .lock import RunLock, check_free
from .model import LanguageModel, embedding_size, make_embedding
from .seq2seq import Seq2Seq
from . import seeding
from .plugins import LoadFailure, PluginLoader
from .compose import Composed, Origin, compose, is_path, leaves
from .spec import (all_components, component_slots, composed_schema, load_spec_file,
                   decode_spec, is_seq2seq, parse_spec, resolve, resolve_component, spec_text, value_problems)
from .distributed import World, check_split
from .runner import SAMPLES_FILE, SPEC_FILE, Run, RunResult, pick_device
from .budget import check_run as check_memory
from .strategy import Strategy

if TYPE_CHECKING:
    from .compare import CompareResult
    from .loaded import LoadedModel


# What `--resume` may change: how long and how it trains, and what it generates at the
# end. Everything else (data, model, sampler, seed) would make the checkpoint meaningless.
RESUMABLE = ("train", "generate", "device", "name", "out", "vars")
STDIN = "-"   # a spec argument that reads the spec from standard input


def changed_paths(a, b, path: str = "$") -> list[str]:
    """JSON paths where two resolved specs differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b))
                for p in changed_paths(a.get(k), b.get(k), f"{path}.{k}")]
    return [] if a == b else [path]


class Session:
    """One set of loaded plugins, and everything you can do with them.

    plugins:      extra plugin objects or modules, registered directly (no entry point)
    entry_points: load third-party plugins from the `seqgen` entry-point group
    strict:       a third-party plugin that fails to load is an error, not a warning
    env:          the environment SEQGEN_PLUGINS / SEQGEN_DISABLE_PLUGINS are read from
                  (default os.environ)
    builtins:     register seqgen's own plugins (False: only `plugins` and entry points)
    runs_dir:     where runs go when neither `out` nor the spec's "out" says (default
                  "runs", under the working directory)

    `config` holds these options as given: `Session(**session.config)` makes an equal
    session (compare with jobs > 1 sends it to its worker processes).
    """

    def __init__(self, plugins: Iterable[Any] = (), *, entry_points: bool = True,
                 strict: bool = False, env: dict | None = None, builtins: bool = True,
                 runs_dir: str | Path | None = None):
        plugins = tuple(plugins)
        self.config = {"plugins": plugins, "entry_points": entry_points, "strict": strict,
                       "env": None if env is None else dict(env), "builtins": builtins,
                       "runs_dir": None if runs_dir is None else str(runs_dir)}
        self.runs_dir = Path("runs") if runs_dir is None else Path(runs_dir)
        self._loader = PluginLoader(plugins, entry_points=entry_points, strict=strict,
                                    builtins=builtins, env=env)
        self.registry = self._loader.build_registry()

    # -- introspection ------------------------------------------------------------------
    @property
    def load_failures(self) -> list[LoadFailure]:
        """Plugins that failed to load, or had a registration refused (LoadFailure)."""
        return list(self._loader.failures)

    @property
    def warnings(self) -> list[str]:
        """Notes about plugin selection (e.g. SEQGEN_PLUGINS names that match nothing)."""
        return list(self._loader.warnings)

    def plugins(self) -> dict:
        """Loaded plugins, their components and presets, and load failures (JSON-able)."""
        comps, presets = self.registry.all(), self.registry.presets()
        return {
            "plugins": [{"name": p.name, "origin": p.origin, "module": p.module,
                         "distribution": p.distribution, "version": p.version,
                         "hooks": list(p.hooks),
                         "components": [{"kind": c.kind, "name": c.name,
                                         "description": c.description,
                                         **({"replaces": c.replaces} if c.replaces else {})}
                                        for c in comps if c.plugin == p.name],
                         "presets": [r.name for r in presets if r.plugin == p.name]}
                        for p in self._loader.infos],
            "failures": [{"name": f.name, "distribution": f.distribution, "error": f.error,
                          "partial": f.partial} for f in self._loader.failures],
            "warnings": self.warnings,
        }

    def presets(self) -> list[dict]:
        """Every registered preset: name, description, what it needs, and its plugin."""
        return [{"name": p.name, "description": p.description, "needs": dict(p.needs),
                 "plugin": p.plugin, "distribution": p.distribution, "version": p.version}
                for p in self.registry.presets()]

    def schema(self) -> dict:
        """The spec JSON Schema with every registered component's options composed in."""
        return composed_schema(self.registry)

    def component(self, kind: str, name: str) -> Component:
        return self.registry.get(kind, name)

    # -- specs ----------------------------------------------------------------------------
    def compose(self, spec: dict | str | Path, overrides: Iterable[str] = (),
                env: dict | None = None, interpolating: bool = True) -> Composed:
        """A spec with its `extends` chain merged, overrides applied and variables
        interpolated, each field's origin kept; not yet validated. `spec` is a dict, a
        spec file path, a preset name, or "-" (read from standard input)."""
        label = None if isinstance(spec, dict) else str(spec)
        spec, origin, base_dir = self._source(spec)
        try:
            return compose(spec, self.registry, overrides, origin, base_dir, env,
                           interpolating=interpolating)
        except SpecError as e:   # name the spec the problem was found in
            if e.source is not None or label is None:
                raise
            raise SpecError(e.problems, source=label) from None

    def resolve(self, spec: dict | str | Path, overrides: Iterable[str] = (),
                env: dict | None = None) -> dict:
        """Compose a spec (dict, path or preset name), validate it against the schema and
        every component's options, and fill defaults: the spec a run uses and saves."""
        source = None if isinstance(spec, dict) else str(spec)
        return resolve(self.compose(spec, overrides, env).spec, self.registry, source=source)

    def explain(self, spec: dict | str | Path, overrides: Iterable[str] = (),
                env: dict | None = None) -> dict:
        """The resolved spec, where every field came from (a preset, a file, an override
        or a schema default), and which plugin, distribution and version supplied every
        component. JSON-able."""
        composed = self.compose(spec, overrides, env)
        source = None if isinstance(spec, dict) else str(spec)
        resolved = resolve(composed.spec, self.registry, source=source)
        return {"spec": resolved,
                "fields": [{"path": path, "value": value, **composed.origin(path).to_dict()}
                           for path, value in leaves(resolved)],
                "components": self.components_of(resolved)}

    def data_stats(self, spec: dict | str | Path, overrides: Iterable[str] = (),
                   top: int = 10) -> dict:
        """Statistics of the corpus the spec's dataset builds (seqgen/corpus_stats.py):
        sizes, vocabulary, most and least frequent tokens, top-N coverage, and sequence
        lengths for line and pair datasets. JSON-able; nothing is trained or written."""
        from .corpus_stats import corpus_stats
        resolved = self.resolve(spec, overrides)
        return corpus_stats(self.build("dataset", resolved["dataset"]), top=top)

    def components_of(self, spec: dict) -> list[dict]:
        """{path, kind, name, plugin, distribution, version} for every component a
        resolved spec names, nested ones included."""
        return [{"path": path, **self.registry.get(kind, obj["type"]).provenance()}
                for path, kind, obj in all_components(spec, self.registry)]

    def _source(self, spec: dict | str | Path) -> tuple[dict, Origin, Path]:
        """(spec, origin, directory its relative `extends` paths start from)."""
        if isinstance(spec, dict):
            return spec, Origin("python"), Path.cwd()
        text, path = str(spec), Path(spec)
        if text == STDIN:
            stdin = getattr(sys.stdin, "buffer", None)
            data = stdin.read() if stdin is not None else sys.stdin.read().encode("utf-8",
                                                                                  "surrogateescape")
            return (parse_spec(decode_spec(data, "<stdin>"), "<stdin>"), Origin("stdin"),
                    Path.cwd())
        looks_like_path = is_path(text, Path.cwd())
        if not looks_like_path and self.registry.has_preset(text):
            return {"extends": text}, Origin("python"), Path.cwd()  # adds no fields itself
        if not looks_like_path:
            raise SpecError([f"{text}: no such spec file or preset. "
                             f"{self.registry.preset_choices(text)}"])
        return load_spec_file(path), Origin("file", text), path.parent

    def build(self, kind: str, options: dict, *args, **kwargs):
        """Build a component from its spec object (components in its own slots first).
        Plugin bugs, and a factory returning the wrong type, become PluginError naming
        the plugin."""
        component = self.registry.get(kind, options["type"])
        options = dict(options)
        for key, sub_kind, many in component_slots(component):
            if options.get(key) is not None:
                value = options[key]
                options[key] = ([self.build(sub_kind, v) for v in value] if many
                                else self.build(sub_kind, value))
        where = (f"{kind} {component.name!r} (plugin {component.plugin!r}, distribution "
                 f"{component.distribution or '?'})")
        try:
            built = component.build(options, *args, **kwargs)
        except SeqgenError:
            raise
        except Exception as e:
            raise PluginError(f"{where} failed to build: {type(e).__name__}: {e}") from e
        if (problem := KIND_BY_NAME[kind].wrong_type(built)) is not None:
            raise PluginError(f"{where}: its factory returned {problem}")
        return built

    def build_model(self, spec: dict, vocab_size: int,
                    source_vocab_size: int | None = None) -> "LanguageModel | Seq2Seq":
        """The spec's model, its weights drawn from the run's own "init" generator
        (seqgen/seeding.py): the spec's seed decides them, and torch's global generator
        is left as it was. A seq2seq model reads sources of `source_vocab_size` tokens
        (default: the target's `vocab_size`, a shared vocabulary)."""
        model_spec = spec["model"]
        init = seeding.generator(spec.get("seed", 0), "init")
        with seeding.global_rng(init):      # torch modules initialise from the global one
            if is_seq2seq(model_spec):
                model = self._build_seq2seq(model_spec, vocab_size,
                                            source_vocab_size or vocab_size)
            else:
                emb_spec = model_spec["embedding"]
                cell = self.build("cell", model_spec["cell"], embedding_size(vocab_size, emb_spec))
                model = LanguageModel(vocab_size, cell, make_embedding(vocab_size, emb_spec))
        seeding.initialize(model, init)
        return model

    def _build_seq2seq(self, model_spec: dict, vocab_size: int, source_vocab_size: int) -> Seq2Seq:
        enc, dec = model_spec["encoder"], model_spec["decoder"]
        encoder = self.build("cell", enc["cell"], embedding_size(source_vocab_size, enc["embedding"]))
        # The decoder's input is [embedding ; context], whose width is the attention's,
        # whose query is the decoder's hidden state: a throwaway build of the decoder
        # cell tells its hidden size (any cell plugin's, whatever its options are called).
        probe = self.build("cell", dec["cell"], 1)
        try:
            attention = self.build("attention", model_spec["attention"], probe.hidden_size,
                                   encoder.output_size)
        except SpecError as e:          # sizes that do not fit: say which field to change
            raise SpecError([p if p.startswith("$") else f"$.model.attention: {p}"
                             for p in e.problems]) from None
        decoder = self.build("cell", dec["cell"],
                             embedding_size(vocab_size, dec["embedding"]) + attention.context_size)
        return Seq2Seq(vocab_size, encoder, decoder, attention,
                       make_embedding(source_vocab_size, enc["embedding"]),
                       make_embedding(vocab_size, dec["embedding"]))

    def strategy(self, options: dict | str) -> Strategy:
        """A decoding strategy from its name or spec object, options validated."""
        obj = copy.deepcopy({"type": options} if isinstance(options, str) else options)
        problems = (value_problems(obj, "$.strategy")
                    + resolve_component(self.registry, "strategy", obj, "$.strategy"))
        if problems:
            raise SpecError(problems)
        return self.build("strategy", obj)

    # -- running --------------------------------------------------------------------------
    def emitter(self, emit: Emit | None) -> Emit:
        """Events go to every plugin's on_event, in registration order, then to `emit`. A
        plugin that raises stops the run with a PluginError naming it."""
        observers = self._loader.pm.hook.on_event.get_hookimpls()

        def send(event: Event) -> None:
            for impl in observers:
                try:
                    impl.function(**{a: {"event": event, "session": self}[a]
                                     for a in impl.argnames})
                except SeqgenError:
                    raise
                except Exception as e:
                    info = self._loader.info(impl.plugin_name)
                    raise PluginError(f"plugin {info.name!r} (distribution {info.distribution}) "
                                      f"failed in on_event({event.kind!r}): "
                                      f"{type(e).__name__}: {e}") from e
            if emit is not None:
                emit(event)
        return send

    def run(self, spec: dict | str | Path, overrides: Iterable[str] = (),
            out: str | Path | None = None, emit: Emit | None = None, *, save: bool = True,
            cancel=None, should_stop=None, handle_signals: bool = False,
            world: World = World()) -> RunResult:
        """Train, evaluate, save and generate, as the spec says. Returns a RunResult,
        whose `.model` is the trained model (a LoadedModel) ready to generate.

        save: False trains in memory and writes nothing (no run directory, no loggers).
        With saving, the run directory (`out`, the spec's "out", else a new one under the
        session's runs_dir) is created only once the data is read and every component is
        built, so a spec that cannot run leaves nothing behind. It is locked while the run
        lasts: a directory another process trains in is refused (RunInUse, naming it).

        Stopping early: `cancel` (a threading.Event, set from any thread) or
        `should_stop` (a callable, asked after every optimizer step) stops the run at the
        next step boundary; it saves last.safetensors and returns with `interrupted`
        True, so `resume` can continue it. handle_signals: on the main thread, the first
        SIGINT/SIGTERM does the same (the CLI asks for this; a library call leaves the
        process's signal handlers alone by default). A stop before training starts
        raises Interrupted with nothing written. An exception raised by an event callback
        (`emit`, a logger, an on_event plugin) saves last.safetensors, then propagates.

        Everything random draws from generators derived from the spec's seed: the
        process's torch, random and numpy generators are left as they were.

        world: this process's place among data-parallel ranks (`World.from_env()` under
        torchrun); every rank calls `run` with the same arguments, and rank 0 writes the
        run directory (seqgen/distributed.py). On the other ranks the result has no
        run_dir, no samples, and the last weights (rank 0 delivers the best)."""
        spec = self.resolve(spec, overrides)
        check_memory(spec)                          # seqgen/budget.py: refuse what cannot fit
        if save and (out or spec["out"]) is not None and world.main:
            check_free(out or spec["out"])        # refuse at once, not after loading data
        check_split(spec, world)                  # before waiting for the other ranks
        request = StopRequest(cancel, should_stop)
        with (stop_on_signals(request, install=handle_signals, repeat=not world.distributed)
              as stop, world.joined(pick_device(spec["device"]))):
            run = Run(self, spec, self.emitter(emit), stop, world)
            check(stop, "interrupted before training started; nothing was written")
            try:
                if save:
                    run.create(out)
                return run.execute()
            finally:
                run.release()

    def resume(self, run_dir: str | Path, overrides: Iterable[str] = (),
               emit: Emit | None = None, *, cancel=None, should_stop=None,
               handle_signals: bool = False, world: World = World()) -> RunResult:
        """Continue an interrupted run from its last.safetensors (overrides may extend it,
        e.g. train.epochs=20). The continued run ends exactly as an uninterrupted one.

        A run stopped before its first checkpoint (killed while starting or in its first
        epoch) starts again from the beginning with its spec.json, saying so in a
        "warning" event. The directory is locked from the start (RunInUse if another
        process trains in it); a stop before training resumes changes nothing in it.
        cancel, should_stop, handle_signals and world work as for `run`; every rank reads
        the checkpoint, so the directory must be on a file system they share."""
        run_dir = Path(run_dir)
        spec_path = run_dir / SPEC_FILE
        if not spec_path.is_file():
            raise CheckpointError(f"{run_dir}: not a run directory ({SPEC_FILE} not found)")
        request = StopRequest(cancel, should_stop)
        lock = RunLock(run_dir) if world.main else contextlib.nullcontext()
        with lock, stop_on_signals(request, install=handle_signals,
                                   repeat=not world.distributed) as stop:
            stored = self.resolve(spec_path)
            spec = self.resolve(stored, overrides)
            check_memory(spec)                      # seqgen/budget.py: refuse what cannot fit
            changed = [p for p in changed_paths(stored, spec)
                       if p.split(".")[1] not in RESUMABLE]
            if changed:
                raise SpecError([f"{p}: cannot change when resuming (only "
                                 f"{', '.join(RESUMABLE)} can); start a new run with --out "
                                 f"instead" for p in changed])
            started = (run_dir / ckpt.LAST_FILE).is_file()
            trained = False      # training done, but the run stopped before its samples
            if started:
                state = ckpt.load(run_dir / ckpt.LAST_FILE).state
                epoch, step = state.get("epoch", 0), state.get("step", 0)
                trained = epoch >= spec["train"]["epochs"] or bool(
                    spec["train"]["max_steps"] and step >= spec["train"]["max_steps"])
                if trained and (run_dir / SAMPLES_FILE).is_file():
                    raise TrainingError(f"{run_dir}: the run already finished ({epoch} epochs, "
                                        f"{step} steps). To train longer: seqgen run --resume "
                                        f"{run_dir} --set train.epochs={epoch + 10}")
            check_split(spec, world)
            with world.joined(pick_device(spec["device"])):
                return self._resume(run_dir, spec, emit, stop, world, started, trained,
                                    list(overrides))

    def _resume(self, run_dir: Path, spec: dict, emit: Emit | None, stop: StopRequest,
                world: World, started: bool, trained: bool, overrides: list) -> RunResult:
        """resume() once the directory is locked and the stored spec checked."""
        run = Run(self, spec, self.emitter(emit), stop, world)
        check(stop, f"interrupted before training resumed; {run_dir} is unchanged "
                    f"(continue it with: seqgen run --resume {run_dir})")
        try:
            if started:
                run.restore(run_dir)
            else:
                run.restart(run_dir)
            if trained:
                run.notes.append(f"{run_dir}: training had finished, but the run stopped "
                                 f"before its end; writing its samples and plot")
            run.trim_metrics()
            if overrides and world.main:
                write_text(run_dir / SPEC_FILE, spec_text(spec))
            return run.execute()
        finally:
            run.release()

    def compare(self, spec: dict | str | Path | None, overrides: Iterable[str] = (),
                out: str | Path | None = None, jobs: int = 1, emit: Emit | None = None,
                sweep: dict | str | Path | None = None,
                report_only: bool = False, *, handle_signals: bool = False,
                cancel=None, should_stop=None) -> "CompareResult":
        """Run every variant of the spec's sweep (or `sweep`) under OUT and write the
        report; with the same OUT again, continue an interrupted sweep. report_only:
        rebuild OUT's report from its run directories (no spec needed, nothing trains).
        jobs > 1 runs variants in worker processes, each with a Session made from this
        one's `config` (plugins given directly travel: modules by name, objects pickled).
        handle_signals, cancel and should_stop work as for `run`. See seqgen/compare.py."""
        from .compare import compare, report_only as rebuild
        if report_only:
            return rebuild(self, out)
        return compare(self, spec, overrides, out, jobs, emit, sweep,
                       handle_signals=handle_signals, cancel=cancel, should_stop=should_stop)

    # -- loading ----------------------------------------------------------------------------
    def load(self, path: str | Path) -> "LoadedModel":
        """A trained model from a checkpoint file or run directory, ready to generate."""
        from .loaded import LoadedModel
        return LoadedModel.from_checkpoint(self, path)
