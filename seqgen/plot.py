"""Loss, perplexity, gradient norm, learning rate and teacher-forcing curves from runs'
metrics.jsonl, as a PNG.

Figures are made with matplotlib's object API (`Figure`, drawn by its Agg canvas), never
through pyplot: no backend is switched and no global figure list is touched, so plotting
changes nothing in a host application that uses matplotlib itself, and is thread-safe."""
from __future__ import annotations

import math
from pathlib import Path

from .atomic import atomic_path, read_json_lines
from .errors import SeqgenError


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise SeqgenError(f"{run_dir}: no metrics.jsonl (is it a run directory?)")
    return read_json_lines(path)


def number(value) -> float:
    """A metrics value as a float: metrics.jsonl writes non-finite numbers as the strings
    "inf", "-inf" and "nan" (seqgen/runner.py json_record); None is nan."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def shown_perplexity(nll: float) -> float:
    """exp(nll) for a plot: capped at PPL_CAP (a diverged run's would overflow)."""
    return math.exp(min(nll, math.log(PPL_CAP))) if nll == nll else math.nan


PPL_CAP = 1e6


def plot_runs(run_dirs: list[Path], out: Path) -> Path:
    """Write `figure_runs(run_dirs)` as a PNG."""
    return save(figure_runs(run_dirs), out)


def figure_runs(run_dirs: list[Path]):
    """Four panels against optimizer steps, one colour per run, so several runs overlay:
    train (per step and per epoch) and validation loss; perplexity (capped at 1e6);
    the global gradient norm before clipping (log axis) with the run's clip_norm as a
    dotted line; the learning rate and the teacher-forcing ratio. A step whose loss or
    gradient norm was not finite (training diverged) is marked by a vertical line; fp16
    steps the gradient scaler skipped, by crosses along the top of the norm panel."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8), layout="constrained")
    (ax_loss, ax_ppl), (ax_norm, ax_lr) = fig.subplots(2, 2)
    ax_ratio = ax_lr.twinx()
    for i, run_dir in enumerate(run_dirs):
        rows = read_metrics(run_dir)
        colour = f"C{i % 10}"
        label = run_label(run_dir)
        steps = [r for r in rows if r.get("event") == "step" and isinstance(r.get("step"), int)]
        finite = [(r["step"], number(r.get("loss"))) for r in steps
                  if math.isfinite(number(r.get("loss")))]
        if finite:
            xs, losses = zip(*finite)
            ax_loss.plot(xs, losses, "-", color=colour, alpha=0.3, linewidth=0.8,
                         label=f"{label} train (step)")
            ax_ppl.plot(xs, [shown_perplexity(v) for v in losses], "-", color=colour,
                        alpha=0.3, linewidth=0.8, label=f"{label} train (step)")
            if min(losses) > 0 and max(losses) > 1000 * min(losses):
                ax_loss.set_yscale("log")          # a diverging run's losses span decades
        for kind, key, style in (("epoch", "train", "--"), ("eval", "valid", "-")):
            points = [(r["step"], number(r[f"{key}_loss"])) for r in rows
                      if r.get("event") == kind and f"{key}_loss" in r]
            if not points:
                continue
            xs, losses = zip(*points)
            ax_loss.plot(xs, losses, style, color=colour, marker=".", label=f"{label} {key}")
            ax_ppl.plot(xs, [shown_perplexity(v) for v in losses], style,
                        color=colour, marker=".", label=f"{label} {key}")
        norms = [(r["step"], number(r.get("grad_norm"))) for r in steps]
        shown = [(x, n) for x, n in norms if math.isfinite(n) and n > 0]
        if shown:
            ax_norm.plot(*zip(*shown), "-", color=colour, linewidth=0.8,
                         label=f"{label} grad norm")
            ax_norm.set_yscale("log")
        clip = clip_norm(run_dir)
        if clip is not None and steps:
            ax_norm.axhline(clip, color=colour, linestyle=":", label=f"{label} clip_norm {clip:g}")
        lrs = [(r["step"], number(r.get("lr"))) for r in steps if r.get("lr") is not None]
        if lrs:
            ax_lr.plot(*zip(*lrs), "-", color=colour, label=f"{label} lr")
        ratios = [(r["step"], number(r.get("teacher_ratio"))) for r in steps
                  if r.get("teacher_ratio") is not None]
        if ratios:
            ax_ratio.plot(*zip(*ratios), "--", color=colour, alpha=0.6,
                          label=f"{label} teacher ratio")
        skipped = [r["step"] for r in steps if r.get("amp_skipped")]
        if skipped:    # fp16: the scaler skipped these steps and lowered its scale
            low, high = ax_norm.get_ylim()
            ax_norm.plot(skipped, [high] * len(skipped), "x", color=colour, clip_on=False,
                         label=f"{label} fp16 overflow, step skipped ({len(skipped)})")
        bad = [r["step"] for r in steps if not r.get("amp_skipped") and not (
            math.isfinite(number(r.get("loss"))) and math.isfinite(number(r.get("grad_norm"))))]
        if bad:
            for ax in (ax_loss, ax_ppl, ax_norm, ax_lr):
                ax.axvline(bad[0], color="red", linestyle="-.", linewidth=1,
                           label=f"{label} overflow at step {bad[0]}" if ax is ax_loss else None)
    ax_ratio.set_ylim(-0.05, 1.05)
    ax_ratio.set_ylabel("teacher-forcing ratio")
    for ax, title in ((ax_loss, "loss (nats per token)"), (ax_ppl, "perplexity (capped at 1e6)"),
                      (ax_norm, "gradient norm before clipping"), (ax_lr, "learning rate")):
        finish_axes(ax, title)
    handles, labels = ax_ratio.get_legend_handles_labels()
    if handles:
        more, names = ax_lr.get_legend_handles_labels()
        ax_lr.legend(more + handles, names + labels, fontsize=8)
    return fig


def clip_norm(run_dir: Path) -> float | None:
    """train.clip_norm from the run's spec.json, when it has one."""
    import json
    try:
        spec = json.loads((Path(run_dir) / "spec.json").read_text(encoding="utf-8"))
        value = spec["train"]["clip_norm"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def finish_axes(ax, title: str, which: str = "major") -> None:
    ax.set_xlabel("optimizer step")
    ax.set_title(title)
    ax.grid(alpha=0.3, which=which)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def run_label(run_dir, width: int = 40) -> str:
    """A run's name for a legend, cut to `width` characters: a long one (names may take
    200 bytes) would squeeze the axes to nothing."""
    name = Path(run_dir).name
    return name if len(name) <= width else name[:width - 1] + "\u2026"


def save(fig, out: Path) -> Path:
    """Write a figure as PNG atomically (figures are made with the constrained layout,
    which places legends and labels without tight_layout's warnings)."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out)


def plot_valid_perplexity(run_dirs: list[Path], out: Path) -> Path:
    """Validation perplexity against optimizer steps, one line per run labelled with its
    directory name: the variants of a comparison overlaid. Log scale, since the first
    evaluations sit far above the rest."""
    import matplotlib.ticker
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    for i, run_dir in enumerate(run_dirs):
        points = [(r["step"], r["valid_perplexity"]) for r in read_metrics(run_dir)
                  if r.get("event") == "eval"]
        if points:
            ax.plot(*zip(*points), ("-", "--", ":")[i // 10 % 3], color=f"C{i % 10}",
                    marker=".", label=run_label(run_dir))      # 10 colours, then dashes
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")   # "5", not "5x10^0"
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    finish_axes(ax, "validation perplexity", which="both")
    return save(fig, out)
