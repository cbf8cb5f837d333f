"""One run directory: building a run from a spec, saving as it trains, resuming it.

    RUN_DIR/
      spec.json                 the resolved spec (re-runnable as is)
      vocab.json                the vocabulary, and how text is prepared for it
      last.safetensors          weights + full training state (resume from here)
      best.safetensors          weights with the best validation loss so far
      checkpoints/epoch-N.safetensors   every train.checkpoint_every epochs
      metrics.jsonl             one JSON line per optimizer step ("event": "step": loss,
                                grad_norm before clipping, clipped, lr, teacher_ratio), per
                                epoch and per evaluation; a non-finite number is written
                                as the string "inf", "-inf" or "nan" (see json_record)
      samples.json, plot.png    written when the run ends
      ...                       whatever the spec's train.loggers write (built-ins:
                                events.jsonl, metrics.csv)

Loggers are built once the directory exists (a new run's before its spec.json, so one
that fails to build leaves no run behind) and closed however the run ends.

A run made with `save=False` has no directory: it writes nothing, keeps its best weights
in memory, and builds no loggers.

Data-parallel (a `World` of several ranks, seqgen/distributed.py): every rank builds the
same run and trains on its rows; rank 0 alone makes, locks and writes the directory (it
gathers the other ranks' carried state and generators into each checkpoint), opens the
loggers, sends events and generates. Rank 0 builds the dataset first, so the others
reuse a token cache it writes instead of encoding the corpus at once.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from . import checkpoint as ckpt
from .atomic import append_line, read_json_lines, write_text
from .data import Dataset
from .distributed import World, check_split
from .components import Component
from .errors import CheckpointError, PluginError, SeqgenError, SpecError, TrainingError
from .events import Emit, Event, json_line
from .generate import Sample, TextGenerator
from .precision import ignored, precision_for
from .interrupt import StopRequest
from .log import log_event
from .loggers import Logger
from .lock import RunLock
from .spec import bidirectional_problem, model_task_problem, spec_text
from .train import Progress, Trainer

if TYPE_CHECKING:
    from .api import Session
    from .loaded import LoadedModel

SPEC_FILE, METRICS_FILE, SAMPLES_FILE, PLOT_FILE = ("spec.json", "metrics.jsonl",
                                                    "samples.json", "plot.png")
VOCAB_FILE = "vocab.json"
SOURCE_VOCAB_FILE = "source_vocab.json"   # seq2seq with separate source and target vocabularies

# A seq2seq run given no prompts translates this many sources of its data at the end.
DEFAULT_SOURCES = 4


@dataclass
class RunResult:
    """What `Session.run` and `Session.resume` return.

    run_dir:        the run directory (None for a run made with save=False)
    spec:           the resolved spec the run used
    num_parameters: the model's parameter count
    train:          the trainer's Progress: steps, losses, history, why it stopped
    samples:        the generated Samples (none when the run was interrupted)
    checkpoint:     the checkpoint the delivered weights are in (best, else last)
    model:          the trained model as a LoadedModel, ready to generate and score (the
                    best weights when the run evaluated, else the last)
    """
    run_dir: Path | None
    spec: dict
    num_parameters: int
    train: Progress
    samples: list[Sample] = field(default_factory=list)
    checkpoint: Path | None = None
    model: "LoadedModel | None" = None

    @property
    def interrupted(self) -> bool:
        """Stopped early (a signal or cancel) with a checkpoint to resume from."""
        return bool(self.train.stopped and self.train.stopped.startswith("interrupted"))


class Run:
    def __init__(self, session: "Session", spec: dict, emit: Emit,
                 stop: StopRequest | None = None, world: World = World()):
        self.session, self.spec, self.send, self.world = session, spec, emit, world
        self.loggers: list[tuple[Component, Logger]] = []
        self.closing = contextlib.ExitStack()      # closes the loggers when execute() ends
        self.device = world.device(pick_device(spec["device"]))
        precision = precision_for(spec["train"]["amp"], self.device)   # fp16 off CUDA: refused
        check_split(spec, world)
        with self._first_on_rank0():   # the others then find its token cache in place
            self.dataset: Dataset = session.build("dataset", spec["dataset"])
        check_dataset(self.dataset, spec)
        source_vocab = self.dataset.source_vocab      # seq2seq with separate vocabularies
        sizes = [len(v) for v in (self.dataset.vocab, source_vocab) if v is not None]
        self.model = session.build_model(spec, *sizes).to(self.device)
        self.best_weights: dict | None = None       # save=False: the best model, in memory
        self.saving = False                          # create/restore/restart: True
        self.sampler = session.build("sampler", spec["sampler"], self.dataset.train,
                                     seed=spec["seed"], rank=world.rank,
                                     world_size=world.size)
        self.train_strategy = session.build("strategy", spec["train"]["strategy"])
        self.gen_strategies = [session.build("strategy", s) for s in spec["generate"]["strategies"]]
        self.generator = TextGenerator(   # generate.unk_text: how <unk> reads in samples
            self.model, self.dataset.vocab.showing_unk_as(spec["generate"]["unk_text"]),
            self.dataset.task, source_vocab)
        self.prompts = (default_sources(self.dataset) if self.dataset.task == "seq2seq"
                        and spec["generate"]["prompts"] == [""] else spec["generate"]["prompts"])
        self.components = session.components_of(spec)   # recorded in every checkpoint
        self._check_prompts()                      # now, not after hours of training
        self.run_dir: Path | None = None
        self.lock: RunLock | None = None           # held from create() to release()
        self.notes: list[str] = []                 # warnings to show once the run starts
        self.trainer = Trainer.from_spec(session, self.model, self.sampler, self.train_strategy,
                                         spec["train"], self.device, spec["seed"],
                                         valid=self.dataset.valid, emit=self._record,
                                         on_epoch=self._show_samples, save=self._save,
                                         stop=stop, precision=precision, world=world,
                                         scorer=self._translation_scorer())

    def _translation_scorer(self):
        """Seq2seq runs with a validation split: BLEU and the rest at every evaluation."""
        if self.dataset.task != "seq2seq" or not self.dataset.valid:
            return None
        from .bleu import bleu_available
        from .translation_eval import TranslationScorer
        options = self.spec["train"]["eval_decoding"]
        if options["max_examples"] and not bleu_available():
            self.notes.append("validation reports no valid_bleu: corpus BLEU needs sacrebleu "
                              "(pip install 'seqgen[bleu]')")
        return TranslationScorer(self.generator, self.dataset.valid,
                                 self.session.build("strategy", options["strategy"]),
                                 self.device, options["max_examples"],
                                 options["max_new_tokens"], self.spec["seed"])

    @contextlib.contextmanager
    def _first_on_rank0(self):
        """Run the block on rank 0 first, then on the other ranks together."""
        if self.world.distributed and not self.world.main:
            self.world.barrier()
        yield
        if self.world.distributed and self.world.main:
            self.world.barrier()

    # -- the run directory ----------------------------------------------------------------------
    def create(self, out) -> None:
        """Make the run directory and lock it (RunInUse while another process trains
        there) before writing anything in it; release() unlocks. Rank 0's alone."""
        self.saving = True
        if not self.world.main:
            return
        self.run_dir = prepare_run_dir(out or self.spec["out"], self.spec["name"],
                                       self.session.runs_dir)
        self.lock = RunLock(self.run_dir).acquire()
        if (self.run_dir / SPEC_FILE).exists():  # a run began here since prepare_run_dir looked
            raise SpecError([f"$.out: {self.run_dir} already holds a run ({SPEC_FILE} exists); "
                             f"choose another directory with --out, or continue it with "
                             f"--resume"])
        self._open_loggers()
        write_text(self.run_dir / SPEC_FILE, spec_text(self.spec))
        for name, vocab in ((VOCAB_FILE, self.dataset.vocab),
                            (SOURCE_VOCAB_FILE, self.dataset.source_vocab)):
            if vocab is not None:
                write_text(self.run_dir / name, json.dumps(vocab.to_dict(), indent=1,
                                                           ensure_ascii=False) + "\n")

    def release(self) -> None:
        """Close the loggers if execute() did not, and unlock the run directory (the
        process ending unlocks it too)."""
        self.closing.close()
        self.trainer.close()
        if self.lock is not None:
            self.lock.release()

    def restart(self, run_dir: Path) -> None:
        """Resuming a run that stopped before its first checkpoint: train it again from
        the beginning in the same directory (the caller holds its lock)."""
        self.saving = True
        if not self.world.main:
            return
        self.run_dir = run_dir
        remove_temp_files(run_dir)            # a killed writer's; the caller holds the lock
        (run_dir / ckpt.BEST_FILE).unlink(missing_ok=True)   # from the attempt: no state
        self.notes.append(f"{run_dir}: the run stopped before its first checkpoint (no "
                          f"{ckpt.LAST_FILE}); training it again from the beginning with "
                          f"its {SPEC_FILE}")
        self._open_loggers()

    def restore(self, run_dir: Path) -> None:
        """Load last.safetensors into the model and trainer (every rank reads it: the run
        directory must be on a file system they share)."""
        self.saving = True
        if self.world.main:
            self.run_dir = run_dir
            remove_temp_files(run_dir)        # a killed writer's; the caller holds the lock
        c = ckpt.load(run_dir / ckpt.LAST_FILE)
        for what, saved, data in (("vocabulary", c.vocab, self.dataset.vocab),
                                  ("source vocabulary", c.source_vocab, self.dataset.source_vocab)):
            difference = (None if saved is None and data is None else
                          "one of them has none" if saved is None or data is None else
                          saved.difference(data))
            if difference is not None:
                raise CheckpointError(f"{run_dir}: the data's {what} differs from the "
                                      f"checkpoint's: {difference}")
        try:
            self.model.load_state_dict(c.group("model"))
        except RuntimeError as e:
            raise CheckpointError(f"{run_dir / ckpt.LAST_FILE}: weights do not fit the "
                                  f"model: {ckpt.first_detail(e)}") from e
        last, state = run_dir / ckpt.LAST_FILE, c.state.get("trainer")
        if state is None:
            raise CheckpointError(f"{last}: holds no training state to resume")
        from .trainstate import tensor_problems   # ckpt.load checked the JSON; now tensors
        if problems := tensor_problems(c.tensors, state):
            raise CheckpointError(f"{last}: " + "; ".join(problems))
        try:
            self.trainer.load_training_state(c.tensors, state)
        except KeyError as e:                      # a tensor no metadata names (RNG states)
            raise CheckpointError(f"{last}: the training state cannot be restored: tensor "
                                  f"{e.args[0]!r} is missing") from e
        except (ValueError, TypeError, RuntimeError, IndexError) as e:
            detail = (str(e).strip() or type(e).__name__).splitlines()[0]
            raise CheckpointError(f"{last}: the training state cannot be restored: "
                                  f"{detail}") from e
        if self.world.main:
            self._open_loggers()

    def _open_loggers(self) -> None:
        """Build the spec's loggers for the run directory; if one fails, close the rest."""
        with contextlib.ExitStack() as stack:
            for options in self.spec["train"]["loggers"]:
                logger = self.session.build("logger", options, self.run_dir)
                stack.callback(logger.close)
                self.loggers.append((self.session.component("logger", options["type"]), logger))
            self.closing = stack.pop_all()

    def trim_metrics(self) -> None:
        """Drop metrics written after the restored checkpoint (a crash between the two).
        A line without an integer 'step' cannot be placed: refused with its number."""
        if self.run_dir is None:                   # another rank's: rank 0 writes
            return
        metrics = self.run_dir / METRICS_FILE
        if not metrics.exists():
            return
        records = read_json_lines(metrics)         # a torn last line is dropped
        numbers = [n for n, line in enumerate(metrics.read_text(encoding="utf-8").splitlines(), 1)
                   if line.strip()]                # the line each record came from
        for number, record in zip(numbers, records):
            step = record.get("step") if isinstance(record, dict) else None
            if not isinstance(step, int) or isinstance(step, bool):
                self.closing.close()               # the loggers restore() opened
                raise SeqgenError(f"{metrics}: line {number} has no integer 'step', so it "
                                  f"cannot be matched to the checkpoint: fix or remove that "
                                  f"line, then resume again")
        kept = [r for r in records if r["step"] <= self.trainer.progress.step]
        write_text(metrics, "".join(json_record(r) + "\n" for r in kept))

    def _save(self, kind: str, trainer: Trainer) -> None:
        if not self.saving:                        # save=False: only the best, in memory
            if kind == "best" and self.world.main:
                self.best_weights = {k: v.detach().clone()
                                     for k, v in self.model.state_dict().items()}
            return
        # every rank takes part in gathering the training state; rank 0 writes it
        extra, meta = trainer.training_state() if kind != "best" else ({}, None)
        if self.run_dir is None:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        state = {"step": trainer.progress.step, "epoch": trainer.progress.epoch}
        if kind == "best":
            path = self.run_dir / ckpt.BEST_FILE
        else:
            tensors.update(extra)
            state["trainer"] = meta
            path = (self.run_dir / ckpt.LAST_FILE if kind == "last" else
                    self.run_dir / "checkpoints" / f"epoch-{trainer.progress.epoch:04d}.safetensors")
        ckpt.save(path, ckpt.Checkpoint(self.spec, self.dataset.vocab, self.dataset.task,
                                        tensors, state, components=self.components,
                                        source_vocab=self.dataset.source_vocab))
        trainer.emit(Event("checkpoint", {"kind": kind, "path": str(path),
                                          "step": trainer.progress.step}))

    def emit(self, event: Event) -> None:
        """Every event goes to the loggers, then to on_event plugins and the caller.
        With several ranks, rank 0's alone: the others' events would repeat its own."""
        if not self.world.main:
            return
        log_event(event)     # "warning" events -> logger "seqgen.run" (seqgen/log.py)
        for component, logger in self.loggers:
            try:
                logger.log(event)
            except SeqgenError:
                raise
            except Exception as e:
                raise PluginError(f"logger {component.name!r} (plugin {component.plugin!r}) "
                                  f"failed on event {event.kind!r}: {type(e).__name__}: "
                                  f"{e}") from e
        self.send(event)

    def _record(self, event: Event) -> None:
        if self.run_dir is not None:
            if event.kind in ("epoch", "eval"):
                append_line(self.run_dir / METRICS_FILE, json_record(event.data))
            elif event.kind == "step":
                append_line(self.run_dir / METRICS_FILE, json_record(
                    {"event": "step", **{k: event.data.get(k) for k in STEP_FIELDS},
                     **{k: event.data[k] for k in AMP_STEP_FIELDS if k in event.data}}))
        self.emit(event)

    def _show_samples(self, epoch: int) -> None:
        every, gen = self.spec["train"]["sample_every"], self.spec["generate"]
        if not every or epoch % every or not self.prompts or not self.world.main:
            return
        strategy = self.gen_strategies[0] if self.gen_strategies else self.session.strategy("greedy")
        self.model.eval()                          # no dropout while sampling
        for s in self.generator.generate(self.prompts, strategy, gen["max_new_tokens"], 1,
                                         self.spec["seed"], gen["on_unknown"], stop=gen["stop"]):
            self.emit(Event("sample", {"epoch": epoch, "prompt": s.prompt,
                                       "text": self._shown(s)}))
        self.model.train()

    def _shown(self, sample: Sample) -> str:
        """A sample's text as printed after its prompt (a translation stands alone)."""
        if self.dataset.task == "seq2seq":
            return sample.text
        return self.dataset.vocab.continuation(sample.prompt, sample.text)

    def _check_prompts(self) -> None:
        """The prompts generation will use (at the end, and every train.sample_every
        epochs) must fit the data's vocabulary: refuse them before anything is written."""
        gen = self.spec["generate"]
        if not (gen["strategies"] or self.spec["train"]["sample_every"] and self.prompts):
            return                                 # nothing will generate from them
        problems = self.generator.prompt_problems(self.prompts, gen["on_unknown"])
        if problems:
            raise SpecError([f"$.generate.prompts: {p}" if i is None else
                             f"$.generate.prompts[{i}] ({self.prompts[i]!r}): {p}"
                             for i, p in problems])

    # -- running ------------------------------------------------------------------------------
    def execute(self) -> RunResult:
        with self.closing:
            return self._execute()

    def _execute(self) -> RunResult:
        self._announce()
        for note in self.notes:
            self.emit(Event("warning", {"message": note}))
        saved = self.run_dir is not None
        try:
            progress = self.trainer.fit()
        except TrainingError:
            if saved:                              # diverged: the plot shows where
                self._plot()
            raise
        result = RunResult(self.run_dir, self.spec, self.model.num_parameters(), progress,
                           checkpoint=self.run_dir / ckpt.LAST_FILE if saved else None)
        self.model.eval()
        if result.interrupted:
            result.model = self._loaded(result.checkpoint)
            self.emit(Event("interrupted", {"signal": progress.stopped.split(":")[1],
                                            "run_dir": self._dir_text(), "step": progress.step}))
            return result
        best = self.run_dir / ckpt.BEST_FILE if saved else None
        if best is not None and best.exists():  # deliver (and sample from) the best model
            self.model.load_state_dict(ckpt.load(best).group("model"))
            result.checkpoint = best
        elif self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        result.model = self._loaded(result.checkpoint)
        result.samples = self._generate()
        if saved:
            self._plot()
        self.emit(Event("end", {"run_dir": self._dir_text(), "steps": progress.step,
                                "seconds": progress.seconds, "stopped": progress.stopped,
                                "history": progress.history[-2:]}))
        return result

    def _dir_text(self) -> str | None:
        return None if self.run_dir is None else str(self.run_dir)

    def _loaded(self, checkpoint: Path | None) -> "LoadedModel":
        """The trained model as a LoadedModel, sharing this run's weights (no reload)."""
        from .loaded import LoadedModel
        return LoadedModel(self.session, self.generator, self.spec, checkpoint,
                           self.components)

    def _announce(self) -> None:
        self.emit(Event("start", {"run_dir": self._dir_text(),
                                  "parameters": self.model.num_parameters(),
                                  "device": str(self.device), "dataset": self.dataset.source,
                                  "vocabulary": len(self.dataset.vocab),
                                  "task": self.dataset.task,
                                  "train_size": len(self.dataset.train),
                                  "train_unit": ("tokens" if self.dataset.train.kind == "stream"
                                                 else "sequences"),
                                  "resumed_at_step": self.trainer.progress.step,
                                  "progress": self.spec["train"]["progress"]}))
        for note in self.train_strategy.warnings():   # generation warns as it generates
            self.emit(Event("warning", {"message": f"$.train.strategy: {note}"}))
        if (note := ignored(self.spec["train"]["amp"], self.device)) is not None:
            self.emit(Event("warning", {"message": note}))

    def _generate(self) -> list[Sample]:
        gen, samples = self.spec["generate"], []
        if not self.world.main:                    # generation is rank 0's
            return samples
        for i, strategy in enumerate(self.gen_strategies):
            def warn(message: str, i: int = i) -> None:
                self.emit(Event("warning", {"message": f"$.generate.strategies[{i}]: {message}"}))
            samples += self.generator.generate(self.prompts, strategy, gen["max_new_tokens"],
                                               gen["num_samples"], self.spec["seed"],
                                               gen["on_unknown"], stop=gen["stop"], warn=warn)
        for s in samples:
            self.emit(Event("generated", {"strategy": s.strategy, "prompt": s.prompt,
                                          "aligned": self.dataset.task in ("aligned", "seq2seq"),
                                          "text": self._shown(s)}))
        if self.run_dir is not None:
            write_text(self.run_dir / SAMPLES_FILE, json.dumps(
                [s.to_dict() for s in samples], indent=2, ensure_ascii=False) + "\n")
        return samples

    def _plot(self) -> None:
        from .plot import plot_runs
        path = plot_runs([self.run_dir], self.run_dir / PLOT_FILE)
        self.emit(Event("plot", {"path": str(path)}))


STEP_FIELDS = ("step", "loss", "grad_norm", "clipped", "lr", "teacher_ratio")
AMP_STEP_FIELDS = ("loss_scale", "amp_skipped")    # fp16 runs only (seqgen/precision.py)


def json_record(data: dict) -> str:
    """One metrics.jsonl line: non-finite floats as "inf", "-inf", "nan" (events.json_line)."""
    return json_line(data)


def prepare_run_dir(out, name: str, runs_dir: Path = Path("runs")) -> Path:
    """The run directory: `out`, or RUNS_DIR/<name>-<timestamp>. Never reuses a finished run,
    and never writes into a directory seqgen did not make (seqgen/paths.py has the path
    policy). Removes the temporary files a killed writer left there."""
    import time

    from .lock import check_free
    from .paths import check_output_dir, dir_name
    if out is None:
        stamp, base = time.strftime("%Y%m%d-%H%M%S"), dir_name(name)
        run_dir, n = Path(runs_dir) / f"{base}-{stamp}", 1
        while run_dir.exists():
            n += 1
            run_dir = Path(runs_dir) / f"{base}-{stamp}-{n}"
    else:
        run_dir = check_output_dir(out, SPEC_FILE)     # absent, empty, or a run directory
    if (run_dir / SPEC_FILE).exists():
        raise SpecError([f"$.out: {run_dir} already holds a run ({SPEC_FILE} exists); choose "
                         f"another directory with --out, or continue it with --resume"])
    run_dir.mkdir(parents=True, exist_ok=True)
    check_free(run_dir)                    # a live writer's temporary files are not stale
    remove_temp_files(run_dir)
    return run_dir


def remove_temp_files(run_dir: Path) -> None:
    """Remove what a kill during an atomic write left in a run directory (and in its
    checkpoints/): only atomic_path's own ".NAME.xxxxxxxx.tmp" files."""
    from .atomic import remove_temp_files as remove
    remove(run_dir)
    remove(run_dir / "checkpoints")


def pick_device(name: str) -> torch.device:
    mps = getattr(torch.backends, "mps", None)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps and mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for, but torch sees no CUDA device "
                            "(use \"device\": \"auto\" or \"cpu\")")
    if name == "mps" and not (mps and mps.is_available()):
        raise TrainingError("device 'mps' was asked for, but it is not available")
    return torch.device(name)


def default_sources(dataset: Dataset) -> list[str]:
    """What a seq2seq run translates when the spec names no sources: the first few of
    its validation split (else of its training split), as text."""
    split = dataset.valid if dataset.valid is not None and len(dataset.valid) else dataset.train
    vocab = dataset.input_vocab
    return [vocab.decode(split.sources[i].tolist()) for i in range(min(DEFAULT_SOURCES, len(split)))]


def check_dataset(dataset: Dataset, spec: dict) -> None:
    """Rules validation could not check before the dataset existed."""
    problems = [p for p in (model_task_problem(spec, dataset.task),
                            bidirectional_problem(spec, dataset.task)) if p is not None]
    if problems:
        raise SpecError(problems)
