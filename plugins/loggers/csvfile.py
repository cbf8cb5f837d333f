"""A CSV table of events: one row per event, one column per field of their data.

The header is the first record's keys in their order. A later record with a new key
(the first "eval" after "epoch" rows) widens it: the file is rewritten once with the new
columns appended, earlier rows getting empty cells, then appending goes on. So the column
order is the order in which fields first appear, and nothing is dropped.
Cells: strings as they are, None empty, anything else as JSON (true, 0.5, [1, 2]).
"""
import csv
import json
import os
from pathlib import Path

from seqgen import Logger, open_append


def cell(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class CsvLogger(Logger):
    def __init__(self, run_dir, *, path, events):
        self.events = set(events)
        self.run_dir, self.path = Path(run_dir), Path(run_dir) / path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()                          # first: refuses a link or a FIFO there
        self.columns = self._header()         # a resumed run keeps the file's columns

    def _header(self) -> list[str]:
        if not self.path.exists():
            return []
        with open(self.path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])

    def _open(self) -> None:
        # never through a symlink planted in the run directory (a link is refused)
        self.file = open_append(self.path, inside=self.run_dir, newline="")
        self.writer = csv.writer(self.file)

    def log(self, event):
        if event.kind not in self.events:
            return
        record = {"event": event.kind, **event.data}
        new = [key for key in record if key not in self.columns]
        if new:
            self._widen(new)
        self.writer.writerow([cell(record.get(c)) for c in self.columns])
        self.file.flush()                     # a crash loses at most the row being written

    def _widen(self, new: list[str]) -> None:
        """Rewrite the file with `new` columns added; a temp file and a rename, so a crash
        leaves the old table or the new one."""
        self.file.close()
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))[1:]
        self.columns += new
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.unlink(missing_ok=True)           # a leftover, or a link: created anew below
        with open(tmp, "x", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(self.columns)
            writer.writerows(row + [""] * (len(self.columns) - len(row)) for row in rows)
        os.replace(tmp, self.path)
        self._open()

    def close(self):
        self.file.close()
