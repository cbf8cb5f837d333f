"""Where a corpus comes from: files (`path`/`paths`, files or globs: read as bytes,
decoded once) or the text itself (`text`, in memory: the filesystem is never touched).

Every failure is a `seqgen.DataError` naming the file, so a spec author sees which file
to fix: missing, a directory, a glob that matches nothing, bytes that are not UTF-8.
"""
from __future__ import annotations

import glob
import os
import stat
from pathlib import Path

from seqgen import DataError, read_text

GLOB_CHARS = set("*?[")
ONE_SOURCE = ("give exactly one of 'path' (a file or glob), 'paths' (a list of them) or "
              "'text' (the text itself)")


def load(path: str | None = None, paths: list[str] | None = None,
         text: str | None = None) -> tuple[str, str, int]:
    """(corpus, source, files read) from exactly one of `path`, `paths` or `text`.

    `text` is normalised as a file is when read (a leading byte-order mark dropped,
    "\\r\\n" made "\\n"), so the same characters give the same tokens either way.
    """
    given = [name for name, value in (("path", path), ("paths", paths), ("text", text))
             if value is not None]
    if len(given) != 1:
        raise DataError(ONE_SOURCE + (f"; got {' and '.join(given)}" if given else ""))
    if text is None:
        files = resolve(path, paths)
        return read_corpus(files), describe(files), len(files)
    return in_memory(text), describe_text(text), 0


def in_memory(text: str) -> str:
    """`text` as a corpus: checked, normalised like a file's contents, never empty."""
    if not isinstance(text, str):
        raise DataError(f"'text' must be a string (the corpus itself), not "
                        f"{type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(f"{describe_text(text)}: character {e.start} ({text[e.start]!r}) "
                        "is not a Unicode character") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    if not text:
        raise DataError(f"{describe_text(text)}: empty corpus")
    return text


def describe_text(text: str) -> str:
    """Short name of an in-memory corpus for messages and `Dataset.source`."""
    n = len(text)
    return f"<text: {n} character{'' if n == 1 else 's'}>"


def resolve(path: str | None = None, paths: list[str] | None = None) -> list[Path]:
    """The files named by `path` (one file or glob) or `paths` (a list of either), in order.

    Relative names resolve against the current working directory; a glob's matches are
    sorted so the corpus is the same on every machine. A name that exists as it is written
    is a file, not a pattern, even with glob characters in it; a pattern matches
    "*?[" literally inside brackets ("corpus[[]1].txt"). Only regular files are read:
    a FIFO or a device (/dev/zero) is refused when it is read, never waited on.
    """
    if (path is None) == (paths is None):
        raise DataError("give exactly one of 'path' (a file or glob) or 'paths' (a list)")
    names = [path] if path is not None else list(paths)
    if not names:
        raise DataError("'paths' is empty: name at least one file")
    files: list[Path] = []
    for name in names:
        files.extend(_expand(str(name)))
    return files


def _expand(name: str) -> list[Path]:
    if "\x00" in name:
        raise DataError(f"{name!r}: a file name cannot hold a NUL character")
    # A name that exists is that file, glob characters and all ("corpus[1].txt"); to match
    # such a character literally in a pattern, bracket it: "corpus[[]1].txt", "what[?].txt".
    if GLOB_CHARS & set(name) and not os.path.lexists(name):
        matches = sorted(m for m in glob.glob(name, recursive=True) if os.path.isfile(m))
        if not matches:
            raise DataError(f"{name}: no file matches this pattern (looked in {os.getcwd()})")
        return [Path(m) for m in matches]
    p = Path(name)
    try:
        is_dir = stat.S_ISDIR(os.stat(p).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"{name}: no such file (looked in {os.getcwd()})") from None
    except OSError as e:                         # e.g. a name over the OS limit
        raise DataError(f"{name}: cannot read: {e.strerror or e}") from None
    if is_dir:
        raise DataError(f"{name}: is a directory, not a file; "
                        f"name a file, or a glob such as '{p / '*.txt'}'")
    return [p]                                   # a FIFO or device: read_text refuses it


def read_corpus(files: list[Path]) -> str:
    """All files as one text; a newline separates files that do not end with one."""
    parts = []
    for f in files:
        text = read_text(f)
        if parts and parts[-1] and not parts[-1].endswith("\n"):
            parts.append("\n")
        parts.append(text)
    text = "".join(parts)
    if not text:
        raise DataError(f"{describe(files)}: empty corpus")
    return text


def describe(files: list[Path]) -> str:
    """Short name of a file list for messages and `Dataset.source`."""
    if len(files) == 1:
        return str(files[0])
    return f"{files[0]} and {len(files) - 1} more file(s)"
