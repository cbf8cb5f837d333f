"""Built-in event loggers: JSON lines of any events, and a CSV table of the metrics."""
from seqgen import hookimpl

from .csvfile import CsvLogger
from .jsonl import JsonlLogger

# Every kind a run emits (see seqgen.Event); an enum so a typo is caught by validation.
EVENT_KINDS = ["start", "epoch_start", "step", "log", "eval", "epoch", "early_stop", "sample",
               "checkpoint", "interrupted", "generated", "plot", "end", "warning"]


# Files of the run directory that a logger must not write into.
RESERVED = ["spec.json", "metrics.jsonl", "samples.json", "plot.png", "last.safetensors",
            "best.safetensors"]
# Relative, inside the run directory: no leading "/", no ".." part, no NUL.
INSIDE = r"^(?!/)(?!(.*/)?\.\.(/|$))[^\x00]+$"


def _schema(path: str, events: list[str]) -> dict:
    return {"type": "object", "properties": {
        "path": {"type": "string", "minLength": 1, "default": path, "pattern": INSIDE,
                 "not": {"enum": RESERVED},
                 "description": "File to append to, relative to the run directory (not one "
                                "of the files seqgen itself writes there)."},
        "events": {"type": "array", "uniqueItems": True, "items": {"enum": EVENT_KINDS},
                   "default": events, "description": "Event kinds to write."}}}


@hookimpl
def register_loggers(register):
    register("jsonl", JsonlLogger,
             _schema("events.jsonl", ["start", "log", "epoch", "eval", "early_stop",
                                      "interrupted", "end"]),
             'One JSON object per event, {"event": kind, ...its data}.')
    register("csv", CsvLogger, _schema("metrics.csv", ["epoch", "eval"]),
             "One row per event (by default per epoch and evaluation), one column per field.")
