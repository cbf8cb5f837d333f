"""An encoder-decoder's attention weights as a heatmap PNG: one row per target (output)
token, one column per source (input) token, like d2l's `show_heatmaps`.

As in seqgen/plot.py, the figure is made with matplotlib's object API (`Figure`, drawn by
its Agg canvas), never through pyplot: no backend is switched and no global figure list
is touched, so a host application's matplotlib is left alone. The PNG is written
atomically (seqgen/atomic.py), so a reader never sees half of one.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .plot import save

# Whitespace-only tokens (a character model's " ", "\n") would be invisible tick labels.
VISIBLE = {" ": "\u2423", "\t": "\u21e5", "\n": "\u21b5"}      # ␣ ⇥ ↵ (DejaVu has them)
EMPTY = "\u2205"                                                 # ∅
MAX_INCHES = 40.0          # a figure for hundreds of tokens stays a sane size in pixels


def write_attention_heatmap(path: str | Path, weights, source_tokens: Sequence[str],
                            target_tokens: Sequence[str], title: str | None = None) -> Path:
    """Write `weights` ([target_len, source_len]: a torch tensor, numpy array or nested
    lists) as a heatmap PNG at `path`: source tokens along the x axis, target tokens down
    the y axis, with a colour bar. Returns the path.

    Raises ValueError when the weights are not a 2-D array of numbers or their shape does
    not match the token counts; TypeError when a token list is given as one string."""
    matrix = _matrix(weights)
    source = _labels(source_tokens, "source_tokens")
    target = _labels(target_tokens, "target_tokens")
    rows, cols = matrix.shape
    if (rows, cols) != (len(target), len(source)):
        hint = (" (transposed? weights are [target_len, source_len])"
                if (rows, cols) == (len(source), len(target)) else "")
        raise ValueError(f"attention weights have shape [{rows}, {cols}] but there are "
                         f"{len(target)} target tokens and {len(source)} source tokens; "
                         f"expected [{len(target)}, {len(source)}]{hint}")
    if rows == 0 or cols == 0:
        raise ValueError(f"attention weights are empty (shape [{rows}, {cols}])")

    from matplotlib.figure import Figure

    width = min(MAX_INCHES, max(4.0, 0.35 * cols + 2.5))
    height = min(MAX_INCHES, max(3.0, 0.35 * rows + 1.5 + (0.8 if title else 0.0)))
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Reds", aspect="auto", interpolation="nearest")
    ax.set_xticks(range(cols))
    ax.set_xticklabels(source, rotation=90, parse_math=False)
    ax.set_yticks(range(rows))
    ax.set_yticklabels(target, parse_math=False)
    ax.set_xlabel("source tokens")
    ax.set_ylabel("target tokens")
    if title:
        ax.set_title(title, parse_math=False)
    fig.colorbar(image, ax=ax, label="attention weight")
    return save(fig, Path(path))


def _matrix(weights):
    """`weights` as a 2-D float numpy array (a tensor is detached and moved to the CPU)."""
    import numpy as np

    if hasattr(weights, "detach"):                     # torch.Tensor, on any device/dtype
        weights = weights.detach().to("cpu").float().numpy()
    try:
        matrix = np.asarray(weights, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"attention weights must be a 2-D array of numbers "
                         f"[target_len, source_len] ({e})") from None
    if matrix.ndim != 2:
        raise ValueError(f"attention weights must be 2-D [target_len, source_len], "
                         f"got shape {list(matrix.shape)}")
    return matrix


def _labels(tokens: Sequence[str], name: str) -> list[str]:
    if isinstance(tokens, str):
        raise TypeError(f"{name} must be a list of tokens, not one string")
    return [visible(str(token)) for token in tokens]


def visible(token: str) -> str:
    """A token as a tick label: an empty one as "∅", a whitespace-only one with each
    character shown ("␣" for a space, "↵" for a newline); any other token as it is."""
    if not token:
        return EMPTY
    if token.strip():
        return token
    return "".join(VISIBLE.get(c, "\u2423") for c in token)
