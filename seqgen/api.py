"""The Python API: a `Session` holds one set of plugins and runs specs with them.

There is no global state: each Session has its own plugin manager and registry, so two
sessions with different plugins coexist in one process. The CLI is a thin shell over
this module.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from . import checkpoint as ckpt
from .atomic import append_line, write_text
from .components import Component
from .data import CAUSAL_TASKS, Dataset
from .errors import PluginError, SeqgenError, SpecError, TrainingError
from .evaluate import perplexity
from .events import Emit, Event
from .generate import Sample, TextGenerator
from .model import LanguageModel, embedding_size, make_embedding
from .plugins import PluginLoader
from .spec import (apply_overrides, composed_schema, load_spec_file, resolve,
                   resolve_component)
from .strategy import Strategy
from .train import TrainResult, Trainer

SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.json"


@dataclass
class RunResult:
    run_dir: Path
    spec: dict
    num_parameters: int
    train: TrainResult
    samples: list[Sample] = field(default_factory=list)
    checkpoint: Path | None = None


class Session:
    """One set of loaded plugins, and everything you can do with them.

    plugins:      extra plugin objects or modules, registered directly (no entry point)
    entry_points: load third-party plugins from the `seqgen` entry-point group
    strict:       a third-party plugin that fails to load is an error, not a warning
    """

    def __init__(self, plugins: Iterable[Any] = (), *, entry_points: bool = True,
                 strict: bool = False, env: dict | None = None):
        self._loader = PluginLoader(plugins, entry_points=entry_points, strict=strict, env=env)
        self.registry = self._loader.build_registry()

    # -- introspection ------------------------------------------------------------------
    @property
    def load_failures(self):
        return list(self._loader.failures)

    def plugins(self) -> dict:
        """Loaded plugins, their components, and load failures (JSON-able)."""
        comps = self.registry.all()
        return {
            "plugins": [{"name": p.name, "origin": p.origin, "module": p.module,
                         "components": [{"kind": c.kind, "name": c.name,
                                         "description": c.description}
                                        for c in comps if c.plugin == p.name]}
                        for p in self._loader.infos],
            "failures": [{"name": f.name, "distribution": f.distribution, "error": f.error}
                         for f in self._loader.failures],
        }

    def schema(self) -> dict:
        """The spec JSON Schema with every registered component's options composed in."""
        return composed_schema(self.registry)

    def component(self, kind: str, name: str) -> Component:
        return self.registry.get(kind, name)

    # -- specs ----------------------------------------------------------------------------
    def resolve(self, spec: dict | str | Path, overrides: Iterable[str] = ()) -> dict:
        """Validate a spec (dict or path), apply --set overrides, fill defaults."""
        source = None
        if not isinstance(spec, dict):
            source = str(spec)
            spec = load_spec_file(spec)
        return resolve(apply_overrides(spec, list(overrides)), self.registry, source=source)

    def build(self, kind: str, options: dict, *args, **kwargs):
        """Build a component from its spec object; plugin bugs become PluginError."""
        component = self.registry.get(kind, options["type"])
        try:
            return component.build(options, *args, **kwargs)
        except SeqgenError:
            raise
        except Exception as e:
            raise PluginError(f"{kind} {component.name!r} (plugin {component.plugin!r}) "
                              f"failed to build: {type(e).__name__}: {e}") from e

    def build_model(self, spec: dict, vocab_size: int) -> LanguageModel:
        emb_spec = spec["model"]["embedding"]
        cell = self.build("cell", spec["model"]["cell"], embedding_size(vocab_size, emb_spec))
        return LanguageModel(vocab_size, cell, make_embedding(vocab_size, emb_spec))

    def strategy(self, options: dict | str) -> Strategy:
        """A decoding strategy from its name or spec object, options validated."""
        obj = copy.deepcopy({"type": options} if isinstance(options, str) else options)
        problems = resolve_component(self.registry, "strategy", obj, "$.strategy")
        if problems:
            raise SpecError(problems)
        return self.build("strategy", obj)

    # -- running --------------------------------------------------------------------------
    def emitter(self, emit: Emit | None) -> Emit:
        def send(event: Event) -> None:
            self._loader.pm.hook.on_event(event=event, session=self)
            if emit is not None:
                emit(event)
        return send

    def run(self, spec: dict | str | Path, overrides: Iterable[str] = (),
            out: str | Path | None = None, emit: Emit | None = None) -> RunResult:
        """Train, evaluate, save and generate, as the spec says. Returns a RunResult."""
        spec = self.resolve(spec, overrides)
        emit = self.emitter(emit)
        device = pick_device(spec["device"])
        torch.manual_seed(spec["seed"])
        dataset: Dataset = self.build("dataset", spec["dataset"])
        check_dataset(dataset, spec)
        model = self.build_model(spec, len(dataset.vocab)).to(device)
        sampler = self.build("sampler", spec["sampler"], dataset.train, seed=spec["seed"],
                             rank=0, world_size=1)
        # Only now, with the data read and every component built, does the run exist.
        run_dir = prepare_run_dir(out or spec["out"], spec["name"])
        write_text(run_dir / SPEC_FILE, json.dumps(spec, indent=2, ensure_ascii=False) + "\n")
        n_params = model.num_parameters()
        emit(Event("start", {"run_dir": str(run_dir), "parameters": n_params,
                             "device": str(device), "dataset": dataset.source,
                             "vocabulary": len(dataset.vocab), "task": dataset.task,
                             "train_tokens": len(dataset.train)}))
        train_strategy = self.build("strategy", spec["train"]["strategy"])
        gen_strategies = [self.build("strategy", s) for s in spec["generate"]["strategies"]]
        for where, s in [("train.strategy", train_strategy)] + [
                (f"generate.strategies[{i}]", s) for i, s in enumerate(gen_strategies)]:
            for note in s.warnings():
                emit(Event("warning", {"message": f"$.{where}: {note}"}))

        generator = TextGenerator(model, dataset.vocab, dataset.task)
        gen = spec["generate"]

        def show_samples(epoch: int) -> None:
            every = spec["train"]["sample_every"]
            if every and epoch % every == 0:
                for s in generator.generate(gen["prompts"], gen_strategies[0] if gen_strategies
                                            else self.strategy("greedy"),
                                            gen["max_new_tokens"], 1, spec["seed"],
                                            gen["on_unknown"]):
                    emit(Event("sample", {"epoch": epoch, "prompt": s.prompt, "text": s.text}))
                model.train()

        def record(event: Event) -> None:
            if event.kind in ("epoch", "eval"):
                append_line(run_dir / METRICS_FILE, json.dumps({"event": event.kind, **event.data}))
            emit(event)

        trainer = Trainer(model, sampler, train_strategy, spec["train"], device, spec["seed"],
                          valid=dataset.valid, emit=record, on_epoch=show_samples)
        result = trainer.fit()
        checkpoint = ckpt.save(run_dir / ckpt.MODEL_FILE, ckpt.Checkpoint(
            spec=spec, vocab=dataset.vocab, task=dataset.task,
            tensors={f"model.{k}": v for k, v in model.state_dict().items()},
            state={"step": result.steps, "epoch": result.epochs}))
        emit(Event("checkpoint", {"path": str(checkpoint)}))

        samples = []
        for strategy in gen_strategies:
            samples += generator.generate(gen["prompts"], strategy, gen["max_new_tokens"],
                                          gen["num_samples"], spec["seed"], gen["on_unknown"])
        for s in samples:
            emit(Event("generated", {"strategy": s.strategy, "prompt": s.prompt, "text": s.text}))
        write_text(run_dir / SAMPLES_FILE, json.dumps(
            [s.__dict__ for s in samples], indent=2, ensure_ascii=False) + "\n")
        summary = {"run_dir": str(run_dir), "steps": result.steps, "seconds": result.seconds,
                   "train_perplexity": perplexity(result.train_nll)}
        if result.valid_nll is not None:
            summary["valid_perplexity"] = perplexity(result.valid_nll)
        emit(Event("end", summary))
        return RunResult(run_dir, spec, n_params, result, samples, checkpoint)

    # -- loading ----------------------------------------------------------------------------
    def load(self, path: str | Path) -> "LoadedModel":
        """A trained model from a checkpoint file or run directory, ready to generate."""
        from .loaded import LoadedModel
        return LoadedModel.from_checkpoint(self, path)


def prepare_run_dir(out: str | Path | None, name: str) -> Path:
    """The run directory: `out`, or runs/<name>-<timestamp>. Never reuses a finished run."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir, n = Path("runs") / f"{name}-{stamp}", 1
        while run_dir.exists():
            n += 1
            run_dir = Path("runs") / f"{name}-{stamp}-{n}"
    else:
        run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise SpecError([f"$.out: {run_dir} exists and is not a directory"])
    if (run_dir / SPEC_FILE).exists():
        raise SpecError([f"$.out: {run_dir} already holds a run ({SPEC_FILE} exists); "
                         f"choose another directory with --out"])
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for, but torch sees no CUDA device "
                            "(use \"device\": \"auto\" or \"cpu\")")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise TrainingError("device 'mps' was asked for, but it is not available")
    return torch.device(name)


def check_dataset(dataset: Dataset, spec: dict) -> None:
    """Rules validation could not check before the dataset existed."""
    if dataset.task in CAUSAL_TASKS and spec["model"]["cell"].get("bidirectional"):
        raise SpecError([f"$.model.cell.bidirectional: dataset {spec['dataset']['type']!r} "
                         f"is a {dataset.task!r} task; a bidirectional cell would see the "
                         f"tokens it must predict. Use it only for aligned tasks."])
