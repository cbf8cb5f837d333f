"""Heatmaps of gates and states over a text: one PNG per layer and direction.

One panel per series (LSTM i, f, g, o, c, h; GRU r, z, n, h; ...), time along x (a
column per token, labelled with the token when the text is short), one row per unit:
the `units` with the largest variance over the text, most varying on top. Colours:
values that stay in [0, 1] (sigmoid gates) on viridis over [0, 1]; the rest on a
diverging map centred at 0, over [-1, 1] when they stay there (tanh), else over
+-max|value| (the LSTM's c).
"""
from __future__ import annotations

import io
import re

import torch

from .trace import Inspection, LayerTrace

MAX_LABELLED_TOKENS = 60


def top_units(values: torch.Tensor, count: int) -> list[int]:
    """values [T, H] -> the indices of the `count` units with the largest variance over
    time, largest first (ties: lower index first)."""
    variance = values.var(0, unbiased=False) if len(values) > 1 else torch.zeros(values.shape[1])
    order = sorted(range(values.shape[1]), key=lambda u: (-float(variance[u]), u))
    return order[:count]


def colour_scale(values: torch.Tensor) -> tuple[str, float, float]:
    """(colormap, vmin, vmax) for a series, as the module docstring says."""
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        return "viridis", 0.0, 1.0
    bound = max(abs(low), abs(high), 1.0)
    return "RdBu_r", -bound, bound


def file_name(layer: LayerTrace) -> str:
    """"layer 0 reverse" -> "inspect-layer0-reverse.png"."""
    return "inspect-" + re.sub(r"\s+(\d)", r"\1", layer.name).replace(" ", "-") + ".png"


def render_heatmaps(inspection: Inspection, units: int = 16) -> dict[str, tuple[bytes, dict]]:
    """{file name: (PNG bytes, {series: [units shown, top first]})}, one per layer."""
    rendered = {}
    for layer in inspection.layers:
        shown = {name: top_units(values, units) for name, values in layer.series.items()}
        png = io.BytesIO()
        figure_layer(inspection, layer, shown).savefig(png, format="png", dpi=100)
        rendered[file_name(layer)] = (png.getvalue(), shown)
    return rendered


def figure_layer(inspection: Inspection, layer: LayerTrace, shown: dict[str, list[int]]):
    from matplotlib.figure import Figure

    T = len(inspection.tokens)
    rows = sum(len(units) for units in shown.values())
    fig = Figure(figsize=(min(2 + 0.18 * T, 24), 1.2 + 0.22 * rows + 0.5 * len(shown)),
                 layout="constrained")
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    fig.suptitle(f"{layer.name} ({inspection.cell or 'cell'}): top units by variance")
    for ax, (name, units) in zip(axes, shown.items()):
        values = layer.series[name][:, units].T                         # [units, T]
        cmap, vmin, vmax = colour_scale(layer.series[name])
        image = ax.imshow(values.numpy(), aspect="auto", interpolation="nearest",
                          cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_yticks(range(len(units)), [str(u) for u in units], fontsize=6)
        ax.set_ylabel(name)
        if T <= MAX_LABELLED_TOKENS:
            ax.set_xticks(range(T), [_label(t) for t in inspection.tokens], fontsize=7)
        else:
            ax.set_xlabel("token")
        fig.colorbar(image, ax=ax, pad=0.01)
    return fig


def _label(token: str) -> str:
    """A token as a tick label: whitespace made visible."""
    return {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"}.get(token, token)
