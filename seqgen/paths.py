"""Where seqgen writes: one policy for run names, output directories and the files in them.

- **$.name** becomes one directory-name component (`runs/<name>-<timestamp>`,
  `runs/compare-<name>-<timestamp>`). A name holding "/" or "\\", NUL or another control
  character, or one that is "." or "..", is refused by validation (a spec error, exit 2).
  A long name is cut, at a character boundary, to NAME_BYTES bytes in the directory name
  only (the spec keeps it whole), so a timestamp always fits within the OS limit.
- **$.out**, the spec field, may not hold a ".." part: a spec (a preset, a file it
  extends, one someone sent you) cannot reach out of the tree it is run in by traversal.
  An absolute $.out is taken as written. `--out` and `Session.run(out=...)` are typed by
  the user and taken as written (".." included). Neither may hold a NUL.
- **An existing output directory** must be empty or seqgen's own (a run directory holds
  spec.json, a comparison directory compare.json; seqgen's hidden `.lock` and temporary
  files do not count). Anything else is refused, so seqgen never overwrites or appends
  to files it did not write.
- **Inside a run directory** seqgen never writes through a symbolic link: appends open
  with O_NOFOLLOW (`open_append`) and refuse a link in the path below the run directory;
  atomic writes rename over the target, which replaces a link rather than the file it
  points to. The metrics a resume reads are opened the same way.
Every refusal is a SeqgenError naming the path; every other OS failure stays an OSError
that carries the file name, which the CLI prints as "PATH: reason" (exit 1).
"""
from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import IO

from .errors import SeqgenError, SpecError

NAME_BYTES = 200          # of a run name in a directory name; NAME_MAX is 255 on most systems
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# What seqgen itself leaves in a directory before it is recognisably a run: its lock and
# atomic_path's temporary files (".NAME.xxxxxxxx.tmp", tempfile's 8 random characters).
TEMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
OWN_HIDDEN = (".lock",)


def name_problem(name: str, path: str = "$.name") -> str | None:
    """Why `name` cannot be one directory-name component, or None."""
    if not isinstance(name, str):
        return None                                   # the schema reports the type
    if "\x00" in name:
        return f"{path}: {name!r} holds a NUL character; a run name becomes a directory name"
    if "/" in name or "\\" in name:
        return (f"{path}: {name!r} holds a path separator; a run name becomes one directory "
                f"name (runs/<name>-<time>): to choose the directory, use $.out or --out")
    if CONTROL.search(name):
        return f"{path}: {name!r} holds a control character; a run name becomes a directory name"
    if name.strip() in (".", ".."):
        return f"{path}: {name!r} is not a usable run name"
    return None


def out_problem(out, path: str = "$.out", spec: bool = True) -> str | None:
    """Why `out` may not be used as an output directory, or None. In a spec (`spec`),
    a ".." part is refused; given by the user (--out), only a NUL or an empty path."""
    if out is None:
        return None
    text = os.fspath(out) if isinstance(out, os.PathLike) else out
    if not isinstance(text, str):
        return None
    if "\x00" in text:
        return f"{path}: {text!r} holds a NUL character"
    if not text.strip():
        return f"{path}: is empty; name a directory (null: runs/<name>-<time>)"
    if spec and ".." in re.split(r"[/\\]", text):
        return (f"{path}: {text!r} holds a '..' part; a spec may not reach out of the "
                f"directory it runs in. Give the directory with --out (or an absolute path)")
    return None


def spec_problems(spec: dict) -> list[str]:
    """The path policy's problems with a spec's $.name and $.out (validation calls this)."""
    return [p for p in (name_problem(spec.get("name")), out_problem(spec.get("out")))
            if p is not None]


def dir_name(name: str) -> str:
    """`name` as (the start of) one directory-name component: cut to NAME_BYTES bytes."""
    problem = name_problem(name)
    if problem is not None:
        raise SpecError([problem])
    data = name.encode("utf-8", "surrogateescape")
    if len(data) <= NAME_BYTES:
        return name
    return data[:NAME_BYTES].decode("utf-8", "ignore").rstrip() or "run"


def check_output_dir(directory: str | Path, marker: str, what: str = "$.out") -> Path:
    """`directory` if seqgen may write there: absent, an empty directory, or one holding
    `marker` (spec.json for a run, compare.json for a comparison). Refuses a file, and a
    directory holding anything else (seqgen's own lock and temporary files aside)."""
    if (problem := out_problem(os.fspath(directory), what, spec=False)) is not None:
        raise SpecError([problem])
    directory = Path(directory)
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        return directory
    except NotADirectoryError:
        raise SpecError([f"{what}: {directory}: a part of this path is a file, not a "
                         f"directory"]) from None
    if not stat.S_ISDIR(info.st_mode):
        raise SpecError([f"{what}: {directory} exists and is not a directory"])
    if (directory / marker).exists():
        return directory
    others = sorted(e for e in os.listdir(directory)
                    if e not in OWN_HIDDEN and not TEMP_FILE.match(e))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise SpecError([f"{what}: {directory} is not empty and was not made by seqgen (it "
                         f"holds {shown}; no {marker}); seqgen writes only into a new or "
                         f"empty directory, or its own: choose another"])
    return directory


def check_no_links(path: Path, inside: Path) -> None:
    """Refuse a symbolic link among the directories between `inside` and `path`."""
    try:
        parts = path.relative_to(inside).parts[:-1]
    except ValueError:
        return
    current = inside
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise SeqgenError(f"{current}: is a symbolic link; seqgen does not write through "
                              f"links inside a run directory (remove it)")


KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")]


def kind_of(mode: int) -> str:
    """What a file of this st_mode is, for messages: "a FIFO (named pipe)", ..."""
    return next((name for test, name in KINDS if test(mode)),
                "a regular file" if stat.S_ISREG(mode) else "a special file")


def _open_regular(path: Path, flags: int) -> int:
    """os.open for a regular file only, never through a symlink, never blocking on a FIFO."""
    try:
        fd = os.open(path, flags | NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            raise SeqgenError(f"{path}: is a symbolic link; seqgen does not write or read "
                              f"through links inside a run directory (remove it)") from None
        if e.errno == errno.ENXIO:                     # a FIFO no one reads
            raise SeqgenError(f"{path}: is {kind_of(os.lstat(path).st_mode)}, not a "
                              f"regular file (remove it)") from None
        if e.filename is None:
            e.filename = str(path)
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise SeqgenError(f"{path}: is {kind_of(mode)}, not a regular file (remove it)")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd


def open_append(path: str | Path, inside: str | Path | None = None, newline: str | None = None
                ) -> IO[str]:
    """Open `path` to append UTF-8 text (creating it with the umask's permissions), never
    through a symbolic link: a link at `path`, or in a directory between `inside` (the run
    directory) and `path`, is a SeqgenError naming it, and so is a FIFO or device there.
    For loggers and JSON-lines files."""
    path = Path(path)
    if inside is not None:
        check_no_links(path, Path(inside))
    fd = _open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "a", encoding="utf-8", newline=newline)


def open_read(path: str | Path, newline: str | None = None) -> IO[str]:
    """Open `path` (a regular file) to read UTF-8 text, never through a symbolic link."""
    path = Path(path)
    fd = _open_regular(path, os.O_RDONLY)
    return os.fdopen(fd, "r", encoding="utf-8", newline=newline)
