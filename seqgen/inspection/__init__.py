"""See inside a trained model: `seqgen inspect RUN_DIR --text "..."`, LoadedModel.inspect.

    trace.py     run the model over a text; gates, states and predictions per token
    heatmap.py   one PNG per layer: gates and states over time, top units by variance
    page.py      inspect.html, a self-contained page coloured by surprise or by a unit
"""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path
from ..errors import GenerationError
from ..events import json_line
from .heatmap import render_heatmaps
from .page import render_page
from .trace import MAX_TOKENS, MAX_VALUES, Inspection, LayerTrace, trace

__all__ = ["Inspection", "LayerTrace", "MAX_TOKENS", "MAX_VALUES", "trace", "write_inspection"]


def write_inspection(inspection: Inspection, out_dir: str | Path, units: int = 16) -> dict:
    """Write inspect.json, inspect.html and a heatmap per layer (the `units` most varying
    units per panel) into out_dir, made if missing. Everything is rendered before the
    first file is written, each file is written whole or not at all, and heatmaps of
    layers an earlier inspection there had (inspect-layer*.png) are removed. Returns
    {"json", "html", "heatmaps": [paths], "units": {heatmap: {series: [units]}}}."""
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise GenerationError(f"units must be a positive integer, not {units!r}")
    out = Path(out_dir)
    data = inspection.to_dict()
    files = {"inspect.json": (json_line(data) + "\n").encode("utf-8"),
             "inspect.html": render_page(data).encode("utf-8")}
    heatmaps = render_heatmaps(inspection, units)
    files.update((name, png) for name, (png, _) in heatmaps.items())
    out.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(content)
    for stale in out.glob("inspect-layer*.png"):
        if stale.name not in files:
            stale.unlink(missing_ok=True)
    return {"json": out / "inspect.json", "html": out / "inspect.html",
            "heatmaps": [out / name for name in heatmaps],
            "units": {name: shown for name, (_, shown) in heatmaps.items()}}
