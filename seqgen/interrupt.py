"""Ctrl-C and SIGTERM as a request to stop at the next safe point.

While a run is in progress (start-up included: reading data, building the model), the
first SIGINT or SIGTERM only sets a flag. Start-up checks it once everything is built,
before anything is written (`Interrupted`: nothing to save yet); the trainer checks it
after each optimizer step, saves a checkpoint and returns. A second signal restores the
default behaviour (KeyboardInterrupt for SIGINT), for a user who really wants out now;
the CLI turns that into exit 130 too.

Guards nest: inside an active `stop_on_signals()` (a sweep around its runs, a run around
its trainer) a nested one shares the outer request instead of installing a handler of
its own, so a signal is seen by every level, once.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from .errors import SeqgenError


class StopRequest:
    def __init__(self):
        self.signal: str | None = None

    def __bool__(self) -> bool:
        return self.signal is not None


class Interrupted(SeqgenError):
    """A stop signal came before training started: the run stopped at a safe point
    with nothing (more) written. Exit code 130, as for an interrupted run."""

    exit_code = 130

    def __init__(self, signal_name: str, message: str):
        self.signal = signal_name
        super().__init__(f"{signal_name}: {message}")


_active: StopRequest | None = None     # the request of the outermost guard, if any


def current() -> StopRequest | None:
    """The stop request of the guard active in this process, if any."""
    return _active


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    global _active
    if threading.current_thread() is not threading.main_thread():
        yield StopRequest()                # signals only reach the main thread
        return
    if _active is not None:
        yield _active                      # nested: the outer guard listens for us
        return
    request = StopRequest()
    previous = {s: signal.getsignal(s) or signal.SIG_DFL   # None: set outside Python
                for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        request.signal = signal.Signals(signum).name
        for s, h in previous.items():      # a second signal acts at once
            signal.signal(s, h)

    for s in previous:
        signal.signal(s, handler)
    _active = request
    try:
        yield request
    finally:
        _active = None
        for s, h in previous.items():
            signal.signal(s, h)


def check(request: StopRequest, message: str) -> None:
    """A safe point outside training: raise Interrupted if a stop was requested."""
    if request:
        raise Interrupted(request.signal, message)
