"""See inside a trained model: `seqgen inspect RUN_DIR --text "..."`, LoadedModel.inspect.

    trace.py     run the model over a text; gates, states and predictions per token
    heatmap.py   one PNG per layer: gates and states over time, top units by variance
    page.py      inspect.html, a self-contained page coloured by surprise or by a unit
"""
from __future__ import annotations

from pathlib import Path

from ..atomic import write_text
from ..events import json_line
from .heatmap import write_heatmaps
from .page import write_page
from .trace import MAX_TOKENS, Inspection, LayerTrace, trace

__all__ = ["Inspection", "LayerTrace", "MAX_TOKENS", "trace", "write_inspection"]


def write_inspection(inspection: Inspection, out_dir: str | Path, units: int = 16) -> dict:
    """Write inspect.json, inspect.html and a heatmap per layer into out_dir (made if
    missing; each file written whole or not at all). Returns {"json", "html",
    "heatmaps": [paths], "units": {heatmap: {series: [units]}}}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = inspection.to_dict()
    write_text(out / "inspect.json", json_line(data) + "\n")
    page = write_page(data, out / "inspect.html")
    heatmaps = write_heatmaps(inspection, out, units)
    return {"json": out / "inspect.json", "html": page, "heatmaps": list(heatmaps),
            "units": {path.name: shown for path, shown in heatmaps.items()}}
