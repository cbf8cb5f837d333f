"""The training loop: batches from a sampler, a strategy deciding what is fed, an
optimizer with a learning-rate schedule, global-norm clipping, evaluation, early
stopping, checkpoints and exact resume.

What happens to the recurrent state between batches is the sampler's declared
`state_rule` ("reset" or "carry"); the loop has no per-sampler branch. When the strategy
feeds the reference at every step (teacher ratio 1), a batch is one whole-sequence call
(the fused path); otherwise the loop steps one token at a time.

Everything the loop needs to continue lives in `Progress` plus the model, optimizer and
RNG states, so an interrupted run resumes to exactly the losses of an uninterrupted one.
Every random number comes from the run's own generators (seqgen/seeding.py).

Stopping early: the trainer checks its `StopRequest` after every optimizer step (a
signal, a cancel event or a should_stop callable; seqgen/interrupt.py), saves
last.safetensors and returns.

Data-parallel (a `World` of several ranks, seqgen/distributed.py): each rank trains on
its rows of every global batch through DistributedDataParallel. Before backward the ranks
sum their NLL and token counts, so each scales its loss by the global count and the
averaged gradient is exactly the single-process one; the reported losses are global.
After each step they sum their stop flags (a signal, the time limit, a failed callback),
so every rank stops at the same step. Dropout and strategy draws come from generators
derived from the seed and the rank. An exception raised by an event callback (a logger, an
on_event plugin, the caller's emit) is held until the step ends, so the state is whole:
the trainer saves last.safetensors, sends no more events, and raises it.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable

import torch

from .batch import Batch, Sampler
from .data import Split
from .distributed import World
from .errors import TrainingError
from .evaluate import mean_nll, perplexity, token_nll
from .events import Emit, Event
from .interrupt import StopRequest
from .precision import Precision, precision_for
from .step_timing import SwingDetector
from .seeding import dropout_generator, generator as derived_generator, global_rng
from .model import LanguageModel
from .state import State, detach_state, map_state
from .strategy import Strategy
from .trainstate import optimizer_from_flat, optimizer_to_flat, state_from_flat, state_to_flat

if TYPE_CHECKING:
    from .api import Session

# A learning-rate schedule: 0-based optimizer step -> factor of each group's base lr.
Schedule = Callable[[int], float]


def forward_batch(model: LanguageModel, batch: Batch, state: State, strategy: Strategy,
                  ratio: float, generator: torch.Generator) -> tuple[torch.Tensor, State]:
    """logits [T, B, V] for a batch, feeding the reference with probability `ratio`. A
    batch with a source (seq2seq) starts from its encoding (seqgen/seq2seq.py)."""
    if batch.source is not None:
        state = model.encode(batch.source, batch.source_lengths)
    if ratio >= 1.0:
        return model(batch.inputs, state, batch.lengths)      # one whole-sequence call
    steps, batch_size = batch.inputs.shape
    token = batch.inputs[0].long()                            # [B]
    outputs = []
    for t in range(steps):
        logits, state = model(token.unsqueeze(0), state)      # [1, B, V]
        outputs.append(logits[0])
        if t + 1 < steps:
            own = strategy.choose(logits[0].detach(), generator)
            use_ref = torch.rand(batch_size, generator=generator) < ratio
            token = torch.where(use_ref.to(own.device), batch.inputs[t + 1].long(), own)
    return torch.stack(outputs), state


class TrainingForward(torch.nn.Module):
    """The whole training forward of a batch as one module call, so that
    DistributedDataParallel sees one forward per backward (the step-by-step path calls
    the model once per token)."""

    def __init__(self, model: LanguageModel):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, state: State, strategy: Strategy, ratio: float,
                generator: torch.Generator) -> tuple[torch.Tensor, State]:
        return forward_batch(self.model, batch, state, strategy, ratio, generator)


def state_rows(state: State) -> int:
    while not isinstance(state, torch.Tensor):
        state = state[0]
    return state.shape[1]


@dataclass
class Progress:
    """Where training stands; JSON-able, saved in every checkpoint, and returned as
    `RunResult.train`. Losses are mean negative log-likelihoods in nats per token.

    epoch, batch: the current epoch (0-based) and the batches of it already trained.
    step, tokens: optimizer steps and training tokens so far.
    epoch_nll, epoch_tokens: summed NLL and tokens of the current epoch so far.
    start_loss: the first step's loss (divergence is measured against it).
    best_valid, bad_evals: the best validation loss, and evaluations since it.
    seconds: training time, across resumes.
    stopped: why training ended (see the field's comment), None while it runs.
    history: one dict per epoch ("event": "epoch", train_loss, ...) and per evaluation
    ("event": "eval", valid_loss, best, ...).
    train_nll, valid_nll (properties): the last epoch's train loss, the best valid loss."""
    epoch: int = 0              # current epoch, 0-based
    batch: int = 0              # batches of the current epoch already trained
    step: int = 0               # optimizer steps so far
    tokens: int = 0
    epoch_nll: float = 0.0      # summed NLL and tokens of the current epoch so far
    epoch_tokens: int = 0
    start_loss: float | None = None
    best_valid: float | None = None
    bad_evals: int = 0          # evaluations since the best one (early stopping)
    seconds: float = 0.0        # training time before this process (resume)
    stopped: str | None = None  # "interrupted:SIGINT" (or :SIGTERM, :cancel),
                                # "early-stopping", "max-steps", "time-limit", "done",
                                # or "failed" (an event callback raised)
    history: list = field(default_factory=list)

    @property
    def train_nll(self) -> float:
        last = [h for h in self.history if "train_loss" in h]
        return last[-1]["train_loss"] if last else math.nan

    @property
    def valid_nll(self) -> float | None:
        return self.best_valid


# save(kind, trainer): kind is "last", "best" or "epoch"; the run decides where it goes.
Saver = Callable[[str, "Trainer"], None]


class Trainer:
    """Trains `model` as `spec` (the spec's "train" section) says, with an optimizer over
    the model's parameters and a schedule already built (see `from_spec`)."""

    def __init__(self, model: LanguageModel, sampler: Sampler, strategy: Strategy,
                 spec: dict, device: torch.device, seed: int, valid: Split | None = None,
                 emit: Emit = lambda e: None, on_epoch=None, save: Saver | None = None, *,
                 optimizer: torch.optim.Optimizer, schedule: Schedule,
                 stop: StopRequest | None = None, precision: Precision | None = None,
                 world: World = World(), scorer: Callable[[], dict] | None = None):
        self.model, self.sampler, self.strategy = model, sampler, strategy
        self.scorer = scorer            # more validation metrics (seq2seq: BLEU, ...)
        self.world, self.seed = world, seed
        self.spec, self.device, self.valid, self.send = spec, device, valid, emit
        self.stop = stop if stop is not None else StopRequest()
        self.failure: Exception | None = None     # an event callback's, raised at step end
        self.on_epoch = on_epoch                  # callback(epoch) for samples
        self.save = save or (lambda kind, trainer: None)
        self.optimizer, self.schedule = optimizer, schedule
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.generator, self.dropout = self.streams()   # strategy draws, dropout masks
        # DDP over ranks; a learned initial state gets no gradient from carried batches
        self.forward = world.parallel(TrainingForward(model), device, some_unused=any(
            getattr(m, "learned_initial_state", False) for m in model.modules()))
        self.explicit = model.explicit_randomness
        self.progress = Progress()
        self.stats: dict = {}                    # the last step's grad_norm, clipped, lr, ...
        self.carried: State = None               # state carried into the next batch
        # train.amp: autocast, and for fp16 a gradient scaler (seqgen/precision.py)
        self.precision = precision or precision_for(spec["amp"], device)
        self.swing = SwingDetector()             # a busy machine: warn once (step_timing.py)

    def streams(self, resumed_at: int | None = None) -> tuple[torch.Generator, torch.Generator]:
        """The strategy's and dropout's generators. One process keeps its historical
        streams; rank r of several draws from streams derived from the seed and r (and,
        resumed at another world size, the step: see load_training_state)."""
        if not self.world.distributed and resumed_at is None:
            return (torch.Generator().manual_seed(self.seed + 1),
                    derived_generator(self.seed, "dropout", self.device))
        tag = f"rank{self.world.rank}of{self.world.size}"
        if resumed_at is not None:
            tag += f"@step{resumed_at}"
        return (derived_generator(self.seed, f"strategy/{tag}"),
                derived_generator(self.seed, f"dropout/{tag}", self.device))

    def close(self) -> None:
        """Training is over: drop DistributedDataParallel, whose buckets and hooks hold
        the process group, so that the group can be left cleanly."""
        if self.world.distributed:
            self.forward = TrainingForward(self.model)

    @classmethod
    def from_spec(cls, session: "Session", model: LanguageModel, sampler: Sampler,
                  strategy: Strategy, spec: dict, device: torch.device, seed: int,
                  **kwargs) -> "Trainer":
        """A trainer whose optimizer and schedule `session` builds from the spec's
        "optimizer" and "schedule" (any registered kind, built-in or a plugin's)."""
        optimizer = session.build("optimizer", spec["optimizer"], model.parameters())
        schedule = session.build("schedule", spec["schedule"], steps_per_epoch=len(sampler),
                                 total_steps=spec["max_steps"] or spec["epochs"] * len(sampler))
        return cls(model, sampler, strategy, spec, device, seed, **kwargs,
                   optimizer=optimizer, schedule=schedule)

    # -- one step -----------------------------------------------------------------------------
    def step(self, batch: Batch, state: State, ratio: float) -> tuple[float, int, State]:
        """One optimizer step; returns (summed NLL of the global batch, its tokens, this
        rank's final state)."""
        factor = self.schedule(self.progress.step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * factor
        # Several ranks: their rows (and padding) may differ, so each divides by its share
        # of the global token count (summed while the forward runs); DDP's mean over
        # ranks is then NLL_global / tokens. The global NLL is summed during backward.
        counted = self.world.sum_later([batch.num_tokens])
        with self.precision.autocast(), self.randomness():
            logits, state = self.forward(batch, state, self.strategy, ratio, self.generator)
            nll = token_nll(logits.float(), batch).sum()
        summed = self.world.sum_later([float(nll.detach())])
        tokens = counted()[0]
        share = tokens / self.world.size if self.world.distributed else tokens
        tokens = int(tokens)
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.precision.scaler
        with self.world.guarded():         # DDP's all-reduce runs inside backward
            if scaler is None:
                (nll / share).backward()
            else:   # fp16: backward through the scaled loss, then the true gradients back
                scaler.scale(nll / share).backward()
                scaler.unscale_(self.optimizer)
        total = summed()[0]
        clip = self.spec["clip_norm"]
        # the global gradient norm before clipping; with no clip_norm, an infinite bound
        # measures it without changing anything
        norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                    math.inf if clip is None else clip))
        self.stats = {"grad_norm": norm, "clipped": clip is not None and norm > clip,
                      "lr": self.optimizer.param_groups[0]["lr"], "teacher_ratio": ratio}
        if scaler is not None:
            # an overflow in float16 gradients is the scaler's to handle: it skips the
            # step and halves the scale (a non-finite loss still ends the run)
            self.stats.update(loss_scale=scaler.get_scale(), amp_skipped=not math.isfinite(norm))
            if math.isfinite(total):
                scaler.step(self.optimizer)
                scaler.update()
        elif math.isfinite(total) and math.isfinite(norm):
            self.optimizer.step()     # a non-finite loss or gradient would poison the weights
        return total, tokens, state

    def checked_norm(self) -> float:
        """The step's gradient norm as the divergence check sees it: a float16 step the
        scaler skipped is not a divergence."""
        return 0.0 if self.stats.get("amp_skipped") else self.stats["grad_norm"]

    def randomness(self):
        """Dropout in the forward pass draws from the run's dropout generator: through
        seqgen.dropout, or for cells that use torch's own, through torch's global
        generator seeded from it and restored (seqgen/seeding.py)."""
        if self.explicit:
            return dropout_generator(self.dropout)
        stack = contextlib.ExitStack()
        stack.enter_context(dropout_generator(self.dropout))
        stack.enter_context(global_rng(self.dropout))
        return stack

    def emit(self, event: Event) -> None:
        """Send an event; an exception from a callback is kept for the step's end, and no
        event is sent after one."""
        if self.failure is not None:
            return
        try:
            self.send(event)
        except Exception as e:
            self.failure = e

    def should_stop(self) -> bool:
        try:
            return bool(self.stop)
        except Exception as e:                # a should_stop callable that raised
            self.failure = e
            return False

    def start_state(self, rows: int) -> State:
        """The sampler's rule: a fresh state every batch, or the last one carried, detached."""
        carried = self.carried
        if self.sampler.state_rule == "reset" or carried is None or state_rows(carried) != rows:
            return self.model.initial_state(rows, self.device)
        return detach_state(carried)

    def kept(self, state: State) -> State:
        """A state to carry: detached, in the weights' dtype. Under autocast a fused cell
        returns bfloat16 or float16 states; carried (and saved) as float32, they resume
        under any train.amp, and autocast casts them back exactly when it needs to."""
        if state is None:
            return None
        dtype = next(self.model.parameters()).dtype
        return map_state(lambda t: t.detach().to(dtype) if t.is_floating_point() else t.detach(),
                         state)

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> Progress:
        """Train until the spec's end (or a stop), with train.threads CPU threads when set
        (torch's setting is process-wide: restored afterwards)."""
        threads = self.spec.get("threads")
        before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            return self._fit()
        finally:
            if threads:
                torch.set_num_threads(before)

    def _fit(self) -> Progress:
        p, spec = self.progress, self.spec
        self.model.train()
        started = time.perf_counter() - p.seconds
        if spec["max_steps"] and p.step >= spec["max_steps"]:
            p.stopped = "max-steps"      # resumed after it finished (to write its samples)
        while p.epoch < spec["epochs"] and p.stopped is None:
            self.emit(Event("epoch_start", {"epoch": p.epoch + 1, "batches": len(self.sampler),
                                            "done": p.batch}))
            ratio = self.strategy.teacher_ratio(p.epoch)
            window = [0.0, 0, time.perf_counter(), []]   # nll, tokens, start time, norms
            for index, batch in enumerate(self.sampler.epoch(p.epoch)):
                if index < p.batch:
                    continue                             # trained before a resume
                batch = batch.to(self.device)
                began = time.perf_counter()
                nll, tokens, state = self.step(batch, self.start_state(batch.inputs.shape[1]),
                                               ratio)
                swung = self.swing.observe(time.perf_counter() - began, tokens,
                                           torch.get_num_threads())
                if swung is not None and self.device.type == "cpu":
                    self.emit(Event("warning", {"message": swung}))
                if not (math.isfinite(nll) and math.isfinite(self.checked_norm())):
                    self.emit(Event("step", {"step": p.step + 1, "loss": nll / tokens,
                                             "tokens": tokens, **self.stats}))
                self._check_loss(nll / tokens, self.checked_norm())
                # only a "carry" sampler continues its rows; a reset one keeps nothing (a
                # seq2seq state holds its whole batch's source encoding)
                self.carried = self.kept(state) if self.sampler.state_rule == "carry" else None
                p.batch, p.step = index + 1, p.step + 1
                p.tokens += tokens
                p.epoch_nll += nll
                p.epoch_tokens += tokens
                window[0] += nll
                window[1] += tokens
                if not self.stats.get("amp_skipped"):   # fp16 overflow: no norm to average
                    window[3].append((self.stats["grad_norm"], self.stats["clipped"]))
                self.emit(Event("step", {"step": p.step, "loss": nll / tokens,
                                         "tokens": tokens, **self.stats}))
                if p.step % spec["log_every"] == 0:
                    self._log(window)
                if spec["eval_every"] and p.step % spec["eval_every"] == 0:
                    self._evaluate()
                p.stopped = self._stop_reason(started) or p.stopped   # or early-stopping
                if p.stopped is not None:
                    break
            if p.stopped and p.stopped.startswith(("interrupted", "failed")):
                break
            self._end_epoch(time.perf_counter() - started)
            if self._failed():
                p.stopped = "failed"
        p.seconds = time.perf_counter() - started
        if p.stopped is None:
            p.stopped = "done"
        evaluated = [h["step"] for h in p.history if h["event"] == "eval"]
        if (not p.stopped.startswith(("interrupted", "failed")) and evaluated
                and evaluated[-1] != p.step):
            self._evaluate()                     # the final weights are always scored
        self.save("last", self)
        if self.failure is not None:                 # saved above: resumable; now raise it
            raise self.failure
        return p

    def _stop_reason(self, started: float) -> str | None:
        """Why training stops after this step, if it does: a stop request, max_steps,
        the time limit, or a failed callback. Several ranks decide together (their
        requests and clocks differ), so all stop after the same step."""
        p, spec = self.progress, self.spec
        asked = self.stop.signal if self.should_stop() else None
        late = bool(spec["max_seconds"] and time.perf_counter() - started >= spec["max_seconds"])
        failed = self.failure is not None
        if self.world.distributed:                 # one collective for all three
            names = ("SIGINT", "SIGTERM", "cancel")
            counts = self.world.sum([asked == n for n in names] + [late, failed])
            asked = next((n for n, c in zip(names, counts) if c), asked)
            late, failed = counts[-2] > 0, self._failed(counts[-1] > 0)
        if failed:
            return "failed"
        if asked is not None:
            return f"interrupted:{asked}"
        if spec["max_steps"] and p.step >= spec["max_steps"]:
            return "max-steps"
        return "time-limit" if late else None

    def _failed(self, anywhere: bool | None = None) -> bool:
        """Whether an event callback failed, here or (with several ranks) on any rank
        (`anywhere`: already summed; else summed now). A rank that did not fail itself
        raises a TrainingError saying so."""
        if not self.world.distributed:
            return self.failure is not None
        if anywhere is None:
            anywhere = self.world.sum([self.failure is not None])[0] > 0
        if anywhere and self.failure is None:
            self.failure = TrainingError("stopped because another rank failed (its error "
                                         "is above)")
        return anywhere

    def _log(self, window: list) -> None:
        now = time.perf_counter()
        nll = window[0] / max(window[1], 1)
        norms = [n for n, _ in window[3]] or [math.nan]
        self.emit(Event("log", {"epoch": self.progress.epoch + 1, "step": self.progress.step,
                                "loss": nll, "perplexity": perplexity(nll),
                                "lr": self.optimizer.param_groups[0]["lr"],
                                "grad_norm_mean": sum(norms) / len(norms),
                                "grad_norm_max": max(norms),
                                "clipped_fraction": (sum(c for _, c in window[3])
                                                     / max(len(window[3]), 1)),
                                "teacher_ratio": self.stats.get("teacher_ratio"),
                                "tokens_per_second": window[1] / max(now - window[2], 1e-9)}))
        window[:] = [0.0, 0, now, []]

    def _check_loss(self, loss: float, grad_norm: float = 0.0) -> None:
        """Raise TrainingError "training diverged" when the loss or the gradient norm is
        not finite (whatever divergence_factor says: the step was not applied, see
        `step`), or the loss passed divergence_factor times the first step's."""
        p, factor = self.progress, self.spec["divergence_factor"]
        if p.start_loss is None and math.isfinite(loss):
            p.start_loss = loss
        if (math.isfinite(loss) and math.isfinite(grad_norm)
                and (factor is None or loss <= factor * p.start_loss)):
            return
        why = (f"loss became {loss}" if not math.isfinite(loss) else
               f"the gradient norm became {grad_norm}" if not math.isfinite(grad_norm) else
               f"loss {loss:.4f} is more than {factor:g}x the starting loss {p.start_loss:.4f}")
        kept = (f"The last good checkpoint is kept (epoch {p.epoch}, before this one)."
                if p.epoch > 0 else "No checkpoint had been saved yet.")
        raise TrainingError(f"training diverged at step {p.step + 1} (epoch {p.epoch + 1}): "
                            f"{why}. {kept} Lower train.optimizer.lr or set train.clip_norm.")

    def _evaluate(self) -> None:
        p = self.progress
        if self.valid is None:
            return
        nll = mean_nll(self.model, self.valid, self.device, world=self.world)
        record = {"event": "eval", "epoch": p.epoch + 1, "step": p.step, "valid_loss": nll,
                  "valid_perplexity": perplexity(nll),
                  **(self.scorer() if self.scorer is not None else {})}
        improved = p.best_valid is None or nll < p.best_valid
        if improved:
            p.best_valid, p.bad_evals = nll, 0
            self.save("best", self)
        else:
            p.bad_evals += 1
        record["best"] = improved
        p.history.append(record)
        self.emit(Event("eval", record))
        if self.spec["patience"] and p.bad_evals >= self.spec["patience"]:
            p.stopped = "early-stopping"
            self.emit(Event("early_stop", {"step": p.step, "best_valid_loss": p.best_valid,
                                           "patience": self.spec["patience"]}))

    def _end_epoch(self, seconds: float) -> None:
        p = self.progress
        train_nll = p.epoch_nll / max(p.epoch_tokens, 1)
        record = {"event": "epoch", "epoch": p.epoch + 1, "step": p.step,
                  "train_loss": train_nll, "train_perplexity": perplexity(train_nll),
                  "lr": self.optimizer.param_groups[0]["lr"], "seconds": seconds}
        p.history.append(record)
        self.emit(Event("epoch", record))
        if not self.spec["eval_every"]:
            self._evaluate()
        if self.on_epoch is not None:
            self.on_epoch(p.epoch + 1)
        p.epoch, p.batch, p.epoch_nll, p.epoch_tokens = p.epoch + 1, 0, 0.0, 0
        every = self.spec["checkpoint_every"]
        if every and p.epoch % every == 0:
            self.save("epoch", self)
        if p.stopped is None and p.epoch < self.spec["epochs"]:
            self.save("last", self)                  # the final one is saved by fit()

    # -- saving and restoring -----------------------------------------------------------------
    def training_state(self) -> tuple[dict, dict]:
        """(tensors, JSON) of everything needed to continue exactly: optimizer, RNGs,
        the carried recurrent state and Progress. Model weights are saved separately."""
        tensors, optim_meta = optimizer_to_flat(self.optimizer)
        carried, world = self.carried, self.world
        if world.distributed:
            # Several ranks (every rank calls this: it gathers): the carried state as the
            # global batch's rows, so any world size can take its rows back; a sampler
            # that resets the state carries nothing (its batches may split unevenly).
            carried = (None if self.sampler.state_rule == "reset"
                       else map_state(world.rows, carried))
        carry, structure = state_to_flat(carried)
        tensors.update(carry)
        # every rank's generators: rank 0's under the one-process names, rank r's + ".r"
        for name, g in (("rng.trainer", self.generator), ("rng.dropout", self.dropout)):
            for rank, state in enumerate(world.each(g.get_state())):
                tensors[name if rank == 0 else f"{name}.{rank}"] = state
        meta = {"progress": asdict(self.progress), "optimizer": optim_meta, "carry": structure,
                "world_size": world.size, "batches": len(self.sampler)}
        if self.precision.scaler is not None:      # fp16: the loss scale and its counter
            meta["scaler"] = self.precision.scaler.state_dict()
        return tensors, meta

    def load_training_state(self, tensors: dict, meta: dict) -> None:
        """Continue from a checkpoint's training state (`training_state`).

        Saved by as many ranks as this world has: every rank takes back its rows of the
        carried state and its own generators, so the run continues bit-exactly. Saved at
        another world size: the weights, optimizer, data order and carried state (the
        global batch's rows, split anew) continue exactly; dropout masks and strategy
        draws come from new streams derived from the seed, the rank and the step resumed
        at (the saved ones belong to other ranks' rows)."""
        optimizer_from_flat(self.optimizer, {k: v for k, v in tensors.items()
                                             if k.startswith("optim.")}, meta["optimizer"])
        carried = self.kept(state_from_flat(tensors, meta["carry"]))
        self.carried = map_state(self.world.mine, carried)
        saved_size, rank = meta.get("world_size", 1), self.world.rank
        if meta.get("batches", len(self.sampler)) != len(self.sampler):
            raise ValueError(f"the sampler makes {len(self.sampler)} batches per epoch over "
                             f"{self.world.size} process(es) but made {meta['batches']} over "
                             f"{saved_size} (a last batch too small to share is dropped); "
                             f"resume with {saved_size} process(es)")
        if saved_size == self.world.size:
            suffix = "" if rank == 0 else f".{rank}"
            self.generator.set_state(tensors["rng.trainer" + suffix])
            if "rng.dropout" in tensors:   # before seqgen/seeding.py, torch's global was kept
                self.dropout.set_state(tensors["rng.dropout" + suffix])
        else:
            self.generator, self.dropout = self.streams(meta["progress"]["step"])
        if self.precision.scaler is not None and meta.get("scaler"):
            self.precision.scaler.load_state_dict(meta["scaler"])
        self.progress = Progress(**meta["progress"])
        self.progress.stopped = None                 # resuming: the epoch count decides
