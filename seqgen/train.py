"""The training loop: batches from a sampler, a strategy deciding what is fed, an
optimizer, global-norm clipping, and perplexity on both splits.

What happens to the recurrent state between batches is the sampler's declared
`state_rule` ("reset" or "carry"); the loop has no per-sampler branch. When the strategy
feeds the reference at every step (teacher ratio 1), a batch is one whole-sequence call
(the fused path); otherwise the loop steps one token at a time, feeding either the
reference or the model's own choice.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from .batch import Batch, Sampler
from .data import Split
from .errors import TrainingError
from .evaluate import mean_nll, perplexity, token_nll
from .events import Emit, Event
from .model import LanguageModel
from .state import State, detach_state
from .strategy import Strategy

OPTIMIZERS = {
    "adam": lambda p, o: torch.optim.Adam(p, lr=o["lr"], weight_decay=o["weight_decay"]),
    "adamw": lambda p, o: torch.optim.AdamW(p, lr=o["lr"], weight_decay=o["weight_decay"]),
    "sgd": lambda p, o: torch.optim.SGD(p, lr=o["lr"], momentum=o["momentum"],
                                        weight_decay=o["weight_decay"]),
    "rmsprop": lambda p, o: torch.optim.RMSprop(p, lr=o["lr"], momentum=o["momentum"],
                                                weight_decay=o["weight_decay"]),
}


def make_optimizer(model: torch.nn.Module, spec: dict) -> torch.optim.Optimizer:
    return OPTIMIZERS[spec["type"]](model.parameters(), spec)


def forward_batch(model: LanguageModel, batch: Batch, state: State, strategy: Strategy,
                  ratio: float, generator: torch.Generator) -> tuple[torch.Tensor, State]:
    """logits [T, B, V] for a batch, feeding the reference with probability `ratio`."""
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


def state_rows(state: State) -> int:
    while not isinstance(state, torch.Tensor):
        state = state[0]
    return state.shape[1]


@dataclass
class TrainResult:
    steps: int = 0
    epochs: int = 0
    tokens: int = 0
    seconds: float = 0.0
    train_nll: float = math.nan
    valid_nll: float | None = None
    history: list = field(default_factory=list)   # one dict per epoch


class Trainer:
    def __init__(self, model: LanguageModel, sampler: Sampler, strategy: Strategy,
                 spec: dict, device: torch.device, seed: int, valid: Split | None = None,
                 emit: Emit = lambda e: None, on_epoch=None):
        self.model, self.sampler, self.strategy = model, sampler, strategy
        self.spec, self.device, self.valid, self.emit = spec, device, valid, emit
        self.on_epoch = on_epoch                       # callback(epoch) for samples
        self.optimizer = make_optimizer(model, spec["optimizer"])
        self.generator = torch.Generator().manual_seed(seed + 1)  # strategy draws

    def step(self, batch: Batch, state: State, ratio: float) -> tuple[float, State]:
        """One optimizer step; returns (summed NLL of the batch, final state)."""
        logits, state = forward_batch(self.model, batch, state, self.strategy, ratio,
                                      self.generator)
        nll = token_nll(logits, batch).sum()
        loss = nll / batch.num_tokens
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.spec["clip_norm"] is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.spec["clip_norm"])
        self.optimizer.step()
        return float(nll.detach()), state

    def fit(self) -> TrainResult:
        spec, result = self.spec, TrainResult()
        max_steps = spec["max_steps"]
        start = time.perf_counter()
        self.model.train()
        for epoch in range(spec["epochs"]):
            ratio = self.strategy.teacher_ratio(epoch)
            state, total, count = None, 0.0, 0
            window_nll, window_tokens, window_start = 0.0, 0, time.perf_counter()
            for batch in self.sampler.epoch(epoch):
                batch = batch.to(self.device)
                rows = batch.inputs.shape[1]
                if state is None or self.sampler.state_rule == "reset" or state_rows(state) != rows:
                    state = self.model.initial_state(rows, self.device)
                else:
                    state = detach_state(state)       # carry across batches, cut the graph
                nll, state = self.step(batch, state, ratio)
                if not math.isfinite(nll):
                    raise TrainingError(f"loss became {nll} at step {result.steps + 1} "
                                        f"(epoch {epoch + 1}); lower the learning rate or "
                                        f"set train.clip_norm")
                total, count = total + nll, count + batch.num_tokens
                window_nll, window_tokens = window_nll + nll, window_tokens + batch.num_tokens
                result.steps += 1
                result.tokens += batch.num_tokens
                if result.steps % spec["log_every"] == 0:
                    now = time.perf_counter()
                    self.emit(Event("log", {
                        "epoch": epoch + 1, "step": result.steps,
                        "loss": window_nll / window_tokens,
                        "perplexity": perplexity(window_nll / window_tokens),
                        "tokens_per_second": window_tokens / max(now - window_start, 1e-9)}))
                    window_nll, window_tokens, window_start = 0.0, 0, now
                if spec["eval_every"] and result.steps % spec["eval_every"] == 0:
                    self._evaluate(epoch, result.steps)
                if max_steps and result.steps >= max_steps:
                    break
            result.epochs = epoch + 1
            result.train_nll = total / max(count, 1)
            record = {"epoch": epoch + 1, "step": result.steps, "train_loss": result.train_nll,
                      "train_perplexity": perplexity(result.train_nll),
                      "seconds": time.perf_counter() - start}
            if self.valid is not None:
                result.valid_nll = mean_nll(self.model, self.valid, self.device)
                record.update(valid_loss=result.valid_nll,
                              valid_perplexity=perplexity(result.valid_nll))
            result.history.append(record)
            self.emit(Event("epoch", record))
            if self.on_epoch is not None:
                self.on_epoch(epoch + 1)
            if max_steps and result.steps >= max_steps:
                break
        result.seconds = time.perf_counter() - start
        return result

    def _evaluate(self, epoch: int, step: int) -> None:
        if self.valid is None:
            return
        nll = mean_nll(self.model, self.valid, self.device)
        self.emit(Event("eval", {"epoch": epoch + 1, "step": step, "valid_loss": nll,
                                 "valid_perplexity": perplexity(nll)}))
