"""Reading UTF-8 text files with errors that name the file and the byte offset."""
from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path
from typing import Iterator

from .errors import DataError
from .paths import kind_of


def read_text(path: str | Path) -> str:
    """One file as text: bytes read at once and decoded once (fast on 100 MB files).

    A leading byte-order mark is dropped and "\\r\\n" becomes "\\n", as open() does.
    Only regular files are read: a directory, FIFO, device (/dev/zero never ends) or
    socket is a DataError saying what it is, found without blocking on it.
    """
    path = Path(path)
    data = _read_regular(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 at byte {e.start} "
                        f"(0x{data[e.start]:02x})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    return text


#: Bytes read at a time by read_text_chunks.
CHUNK_BYTES = 1 << 24


def read_text_chunks(path: str | Path, chunk_bytes: int | None = None,
                     digest=None) -> Iterator[str]:
    """One file as consecutive pieces of text, each decoded from about `chunk_bytes`
    bytes (CHUNK_BYTES by default): the same characters as read_text gives, never the
    whole file in memory. A character split between reads is decoded whole; a "\r\n"
    split between them still becomes "\n". `digest` (a hashlib object) is fed the raw
    bytes. Errors as read_text's, with the byte offset in the file."""
    path = Path(path)
    size = chunk_bytes or CHUNK_BYTES
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, first, carry = 0, True, ""
    with _open_regular(path) as f:
        while True:
            try:
                data = f.read(size)
            except OSError as e:
                raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
            if digest is not None:
                digest.update(data)
            pending = len(decoder.getstate()[0])         # bytes of a character begun before
            try:
                text = decoder.decode(data, final=not data)
            except UnicodeDecodeError as e:              # e.object: pending bytes + data
                raise DataError(f"{path}: not valid UTF-8 at byte {offset - pending + e.start} "
                                f"(0x{e.object[e.start]:02x})") from None
            offset += len(data)
            if first and text:
                text, first = text[1:] if text.startswith("\ufeff") else text, False
            text = carry + text
            carry = ""
            if data and text.endswith("\r"):       # its "\n" may come with the next read
                text, carry = text[:-1], "\r"
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            if text:
                yield text
            if not data:
                return


def _open_regular(path: Path):
    """A binary file object for a regular file (refusing FIFOs, devices, directories
    without blocking), DataError naming the file otherwise."""
    fd = _open_fd(path)
    try:
        return os.fdopen(fd, "rb", closefd=True)
    except OSError as e:
        os.close(fd)
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None


def _open_fd(path: Path) -> int:
    if "\x00" in str(path):
        raise DataError(f"{str(path)!r}: a file name cannot hold a NUL character")
    try:
        # O_NONBLOCK: opening a FIFO with no writer would wait forever; fstat says what it is
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:                          # Windows cannot open a directory
        raise DataError(f"{path}: is a directory, not a text file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = kind_of(mode)
            if what == "a directory":
                raise DataError(f"{path}: is a directory, not a text file")
            raise DataError(f"{path}: is {what}, not a regular file; seqgen reads text from "
                            f"regular files only (copy the data into a file first)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_regular(path: Path) -> bytes:
    try:
        with _open_regular(path) as f:
            return f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
