"""A JSON-lines event log: one object per event, flushed as it is written."""
from pathlib import Path

from seqgen import Logger, json_line, open_append


class JsonlLogger(Logger):
    def __init__(self, run_dir, *, path, events):
        self.events = set(events)
        target = Path(run_dir) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        # Append: a resumed run continues the same file after its "start" event. Never
        # through a symlink planted in the run directory.
        self.file = open_append(target, inside=run_dir)

    def log(self, event):
        if event.kind in self.events:
            line = json_line({"event": event.kind, **event.data})   # valid even on overflow
            self.file.write(line + "\n")
            self.file.flush()          # a crash loses at most the line being written

    def close(self):
        self.file.close()
