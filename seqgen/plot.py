"""Loss and perplexity curves from runs' metrics.jsonl, as a PNG.

Figures are made with matplotlib's object API (`Figure`, drawn by its Agg canvas), never
through pyplot: no backend is switched and no global figure list is touched, so plotting
changes nothing in a host application that uses matplotlib itself, and is thread-safe."""
from __future__ import annotations

from pathlib import Path

from .atomic import atomic_path, read_json_lines
from .errors import SeqgenError


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise SeqgenError(f"{run_dir}: no metrics.jsonl (is it a run directory?)")
    return read_json_lines(path)


def plot_runs(run_dirs: list[Path], out: Path) -> Path:
    """Train and validation loss (left) and perplexity (right) against optimizer steps,
    one colour per run, so several runs overlay on the same axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    ax_loss, ax_ppl = fig.subplots(1, 2)
    for i, run_dir in enumerate(run_dirs):
        rows = read_metrics(run_dir)
        colour = f"C{i}"
        label = Path(run_dir).name
        for kind, key, style in (("epoch", "train", "--"), ("eval", "valid", "-")):
            points = [(r["step"], r[f"{key}_loss"]) for r in rows
                      if r.get("event") == kind and f"{key}_loss" in r]
            if not points:
                continue
            steps, losses = zip(*points)
            ax_loss.plot(steps, losses, style, color=colour, marker=".", label=f"{label} {key}")
            ax_ppl.plot(steps, [min(2.718281828 ** v, 1e6) for v in losses], style,
                        color=colour, marker=".", label=f"{label} {key}")
    for ax, title in ((ax_loss, "loss (nats per token)"), (ax_ppl, "perplexity")):
        finish_axes(ax, title)
    return save(fig, out)


def finish_axes(ax, title: str, which: str = "major") -> None:
    ax.set_xlabel("optimizer step")
    ax.set_title(title)
    ax.grid(alpha=0.3, which=which)
    ax.legend(fontsize=8)


def save(fig, out: Path) -> Path:
    """Write a figure as PNG atomically."""
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out)


def plot_valid_perplexity(run_dirs: list[Path], out: Path) -> Path:
    """Validation perplexity against optimizer steps, one line per run labelled with its
    directory name: the variants of a comparison overlaid. Log scale, since the first
    evaluations sit far above the rest."""
    import matplotlib.ticker
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    for i, run_dir in enumerate(run_dirs):
        points = [(r["step"], r["valid_perplexity"]) for r in read_metrics(run_dir)
                  if r.get("event") == "eval"]
        if points:
            ax.plot(*zip(*points), ("-", "--", ":")[i // 10 % 3], color=f"C{i % 10}",
                    marker=".", label=Path(run_dir).name)      # 10 colours, then dashes
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")   # "5", not "5x10^0"
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    finish_axes(ax, "validation perplexity", which="both")
    return save(fig, out)
