"""How the CLI shows a run: a progress bar on a terminal, plain log lines otherwise.

The bar (tqdm) shows epoch, loss, perplexity, tokens per second, the gradient norm before
clipping ("clip" when clipping acted) and the learning rate, and is redrawn at
most a few times a second, so it costs nothing measurable per step. Output that is not
a terminal (a log file, CI) gets one line per `log_every` steps instead.

A run's "warning" events are not printed here: seqgen logs them (logger "seqgen.run")
and the CLI's log handler prints them, through `Printer.echo` while a bar is shown
(`Printer.showing_logs`), so that they do not tear it.
"""
from __future__ import annotations

import contextlib
import math
import sys
import time

import click

from .events import Event


class Printer:
    def __init__(self, mode: str = "auto", stream=None):
        self.mode = mode
        self.stream = stream if stream is not None else click.get_text_stream("stdout")
        self.bar = None
        self._tokens, self._since = 0, time.perf_counter()

    def __call__(self, event: Event) -> None:
        handler = getattr(self, f"on_{event.kind}", None)
        if handler is not None:
            handler(event.data)

    @property
    def use_bar(self) -> bool:
        if self.mode == "auto":
            return bool(getattr(self.stream, "isatty", lambda: False)())
        return self.mode == "bar"

    def echo(self, text: str, err: bool = False) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr if err else self.stream)
        else:
            click.echo(text, file=sys.stderr if err else self.stream)

    @contextlib.contextmanager
    def showing_logs(self, handler):
        """While the block runs, `handler` (the CLI's EchoHandler) writes through this
        printer, above the progress bar if one is shown."""
        if handler is None:
            yield
            return
        before, handler.write = handler.write, lambda text: self.echo(text, err=True)
        try:
            yield
        finally:
            handler.write = before

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    # -- events ------------------------------------------------------------------------------
    def on_start(self, d):
        self.mode = d.get("progress", self.mode)
        self.echo(f"run directory: {d['run_dir']}")
        if d.get("resumed_at_step"):
            self.echo(f"resuming at step {d['resumed_at_step']}")
        self.echo(f"data: {d['dataset']} ({d['train_size']:,} training {d['train_unit']}, vocabulary "
                  f"{d['vocabulary']}, task {d['task']})")
        self.echo(f"model: {d['parameters']:,} parameters on {d['device']}")

    def on_epoch_start(self, d):
        if not self.use_bar:
            return
        from tqdm import tqdm
        self.close()
        self.bar = tqdm(total=d["batches"], initial=d["done"], desc=f"epoch {d['epoch']}",
                        file=self.stream, leave=False, dynamic_ncols=True, mininterval=0.25)
        self._tokens, self._since = 0, time.perf_counter()

    def on_step(self, d):
        if self.bar is None:
            return
        self._tokens += d["tokens"]
        self.bar.update(1)
        elapsed = time.perf_counter() - self._since
        extra = {}
        if "grad_norm" in d:
            extra = {"gnorm": f"{d['grad_norm']:.3g}" + (" clip" if d.get("clipped") else ""),
                     "lr": f"{d['lr']:.3g}"}
            if "loss_scale" in d:       # fp16: the gradient scaler's scale, and its skips
                extra["scale"] = f"{d['loss_scale']:g}" + (" skip" if d.get("amp_skipped") else "")
        self.bar.set_postfix(loss=f"{d['loss']:.3f}", ppl=ppl_text(math.exp(min(d['loss'], 50))
                                                                   if d['loss'] == d['loss']
                                                                   else math.nan, 2),
                             tok_s=f"{self._tokens / max(elapsed, 1e-9):,.0f}", **extra,
                             refresh=False)

    def on_log(self, d):
        if self.bar is None:
            line = (f"step {d['step']:>6} | epoch {d['epoch']:>3} | loss {d['loss']:.4f} | "
                    f"ppl {ppl_text(d['perplexity'], 3):>8} | "
                    f"{d['tokens_per_second']:,.0f} tok/s")
            if "grad_norm_mean" in d:
                line += (f" | grad norm {d['grad_norm_mean']:.3g} (max "
                         f"{d['grad_norm_max']:.3g}, clipped {d['clipped_fraction']:.0%}) | "
                         f"lr {d['lr']:.3g}")
            self.echo(line)

    def on_epoch(self, d):
        self.close()
        self.echo(f"epoch {d['epoch']}: train loss {d['train_loss']:.4f}, ppl "
                  f"{ppl_text(d['train_perplexity'], 3)} ({d['seconds']:.1f}s)")

    def on_eval(self, d):
        mark = " *" if d.get("best") else ""
        extra = "".join(f", {label} {d[key]:{form}}" for key, label, form in TRANSLATION_METRICS
                        if isinstance(d.get(key), float))           # seq2seq runs
        self.echo(f"  step {d['step']}: valid loss {d['valid_loss']:.4f}, ppl "
                  f"{ppl_text(d['valid_perplexity'], 3)}{extra}{mark}")

    def on_early_stop(self, d):
        self.echo(f"early stopping at step {d['step']}: no better validation loss in "
                  f"{d['patience']} evaluations (best {d['best_valid_loss']:.4f})")

    def on_sample(self, d):
        self.echo(f"  sample: {d['prompt']!r} -> {d['text']!r}")

    def on_generated(self, d):
        joiner = " -> " if d.get("aligned") else ""
        self.echo(f"[{d['strategy']}] {d['prompt']}{joiner}{d['text']}")

    def on_checkpoint(self, d):
        if d["kind"] == "epoch":
            self.echo(f"saved {d['path']}")

    def on_plot(self, d):
        self.echo(f"plot: {d['path']}")


# An evaluation's translation metrics (seqgen/translation_eval.py), as printed.
TRANSLATION_METRICS = (("valid_token_accuracy", "token acc", ".3f"),
                       ("valid_exact_match", "exact", ".3f"), ("valid_bleu", "BLEU", ".1f"))
PPL_SHOWN = 1e6      # above it, "> 1e6" (a diverging run's perplexity has 300 digits)


def ppl_text(value: float, digits: int) -> str:
    """A perplexity for a log line: with `digits` decimals, or "> 1e6" above PPL_SHOWN."""
    if value == value and value > PPL_SHOWN:
        return "> 1e6"
    return f"{value:.{digits}f}"
