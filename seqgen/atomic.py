"""Writing files so that a crash never leaves a half-written one behind.

Every file seqgen writes goes to a temporary file in the same directory, is flushed to
disk, and then renamed over the target (os.replace is atomic on POSIX and Windows). A
reader sees the old file or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import SeqgenError


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())               # mkstemp's 0600 is too private
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json_lines(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file written by append_line. A torn last line (a crash
    mid-append) is dropped; damage anywhere else is an error naming the file and line."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            if number == len(lines):
                break                                  # the line a crash cut short
            raise SeqgenError(f"{path}: line {number} is not valid JSON ({e.msg})") from None
    return records


def append_line(target: str | Path, line: str) -> None:
    """Append one line (JSON lines logs). A single small write with O_APPEND: a crash
    loses at most the line being written, never earlier lines."""
    with open(target, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
