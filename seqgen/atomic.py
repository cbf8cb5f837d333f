"""Writing files so that a crash never leaves a half-written one behind.

Every file seqgen writes goes to a temporary file in the same directory, is flushed to
disk, and then renamed over the target (os.replace is atomic on POSIX and Windows). A
reader sees the old file or the new one, never a mix. A write that fails (a full disk)
leaves the old file as it was and raises an OSError naming the target; a kill mid-write
leaves only a ".NAME.xxxxxxxx.tmp" file, which remove_temp_files clears when a run next
starts or resumes in that directory. Appends and JSON-lines reads never go through a
symbolic link (seqgen/paths.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import SeqgenError
from .paths import TEMP_FILE, open_append, open_read

OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as e:                               # name the file, not a random temp
        raise OSError(e.errno, e.strerror, str(target)) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())               # mkstemp's 0600 is too private
        os.replace(tmp, target)                        # over a symlink: replaces the link
    except BaseException as e:
        tmp.unlink(missing_ok=True)                    # the target is untouched
        if isinstance(e, OSError):
            if e.filename is None or str(e.filename) == str(tmp):
                e.filename = str(target)               # ENOSPC from a write names no file;
                e.filename2 = None                     # os.replace names the temp file
            raise
        if isinstance(e, Exception) and (code := OS_ERROR.search(str(e))):
            # a writer that wraps the OS's error in its own type (safetensors:
            # "I/O error: No space left on device (os error 28)")
            errno = int(code.group(1))
            raise OSError(errno, os.strerror(errno), str(target)) from e
        raise


def remove_temp_files(directory: str | Path) -> list[Path]:
    """Remove the temporary files atomic_path left in `directory` when its process was
    killed mid-write (".NAME.xxxxxxxx.tmp", regular files only; nothing else is touched).
    Called when a run starts or resumes in a directory, under its lock."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if TEMP_FILE.match(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(Path(entry.path))
    return removed


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json_lines(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file written by append_line. A torn last line (a crash
    mid-append) is dropped; damage anywhere else is an error naming the file and line."""
    with open_read(path) as f:                         # never through a planted symlink
        lines = f.read().splitlines()
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
    loses at most the line being written, never earlier lines. Never through a symlink."""
    with open_append(target) as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
