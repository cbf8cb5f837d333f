"""One writer per run directory: an OS file lock on RUN_DIR/.lock.

A process that trains in a run directory (`seqgen run`, `--resume`, each variant of
`seqgen compare`) holds an exclusive `flock` on RUN_DIR/.lock from before it writes
anything there until it ends. The file holds the holder's PID as text, so a second
writer is refused with a message naming it. The lock belongs to the open file, not to
the file's existence: the kernel drops it when the holder exits however it exits
(kill -9 included), so a .lock left behind by a dead process never blocks anyone, and
there is nothing to clean up. The file stays (deleting it would race with a process that
has just opened it); the path policy counts it as seqgen's own (seqgen/paths.py).

Where `fcntl` does not exist (Windows), or the file system refuses locks (some network
mounts), runs are not locked: seqgen works as before, and nothing stops two processes
from writing one run directory.
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from .errors import SeqgenError

try:
    import fcntl
except ImportError:                        # Windows: no flock; runs are not locked
    fcntl = None

LOCK_FILE = ".lock"
PROBE_RETRIES = 10     # x 20 ms: a probe (check_free) holds the lock for microseconds


class RunInUse(SeqgenError):
    """Another process is training in this run directory."""

    exit_code = 1

    def __init__(self, run_dir: Path, pid: int | None):
        self.run_dir, self.pid = run_dir, pid
        who = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"{run_dir}: in use by {who}, which is training in it (it holds "
                         f"{run_dir / LOCK_FILE}); one process at a time writes a run: wait "
                         f"for it to end, or stop it first")


class RunLock:
    """An exclusive lock on RUN_DIR/.lock, taken by `acquire` and held until `release`
    (or the process ends). Usable as a context manager."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.fd: int | None = None        # None: not held (or no locking here)

    def acquire(self) -> "RunLock":
        """Take the lock, or raise RunInUse naming the process holding it."""
        if fcntl is None:
            return self
        fd = _open(self.path)
        for attempt in range(PROBE_RETRIES + 1):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)          # e.g. ENOLCK/EOPNOTSUPP on a network mount
                    return self
                if attempt == PROBE_RETRIES:
                    pid = _read_pid(fd)
                    os.close(fd)
                    raise RunInUse(self.run_dir, pid) from None
                time.sleep(0.02)          # maybe only another start's check_free probe
        self.fd = fd
        try:                               # the PID, for the message a second writer gets
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass                           # opened read-only: locked, without the PID
        return self

    def release(self) -> None:
        """Drop the lock (closing the file is what releases it). Idempotent."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_free(run_dir: str | Path) -> None:
    """Raise RunInUse if a live process holds RUN_DIR's lock. Creates nothing: for a
    fast refusal before a run spends time loading its data."""
    path = Path(run_dir) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunInUse(Path(run_dir), _read_pid(fd)) from None
    finally:
        os.close(fd)


def _open(path: Path) -> int:
    nofollow = getattr(os, "O_NOFOLLOW", 0)   # never write through a planted symlink
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | nofollow, 0o666)
    except PermissionError:
        if path.is_file():                 # a read-only directory that has one already
            return os.open(path, os.O_RDONLY | nofollow)
        raise


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except (OSError, AttributeError):
        return None
    return int(text) if text.isdigit() else None
