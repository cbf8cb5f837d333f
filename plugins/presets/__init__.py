"""Built-in presets: the examples, the textbook's chapter 8-9 recipes, and char-rnn.

Each preset is one JSON file here: {"description", "needs" (optional), "spec"}. A preset
that needs a corpus leaves `dataset.path` out and names it in "needs", so
`seqgen run d2l-gru --set dataset.path=../shared/data/timemachine-d2l.txt` runs it.
"""
import json
from importlib import resources

from seqgen import hookimpl


@hookimpl
def register_presets(register):
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            preset = json.loads(entry.read_text(encoding="utf-8"))
            register(entry.name[:-5], preset["spec"], preset["description"],
                     needs=preset.get("needs"))
