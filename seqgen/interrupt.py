"""Stopping a run at its next safe point: on a signal, a cancel event, or a callable.

A `StopRequest` says whether (and why) a run should stop: a SIGINT/SIGTERM that arrived,
a `threading.Event` the caller set (`Session.run(cancel=...)`), or a `should_stop()`
callable that returned True. Start-up checks it once everything is built, before
anything is written (`Interrupted`: nothing to save yet); the trainer checks it after
each optimizer step, saves a checkpoint and returns.

Signal handlers are installed only when asked (`install=True`: the CLI asks, a library
call does not unless its caller passes handle_signals=True) and only on the main thread,
where Python delivers signals. The first SIGINT or SIGTERM only sets the flag; a second
restores the default behaviour (KeyboardInterrupt for SIGINT), for a user who really
wants out now; the CLI turns that into exit 130 too. A data-parallel rank asks for
`repeat=False`: a repeated signal must not cut one rank's part of the stop the ranks
agree on short (the ranks save one checkpoint together); torchrun, which forwards
Ctrl-C and SIGTERM to them, kills what still runs after its shutdown timeout (30 s).

Guards nest: inside an active guard that installed handlers (a sweep around its runs), a
nested one also stops when the outer one does, so a signal is seen by every level, once.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from .errors import SeqgenError


class StopRequest:
    """Whether a run should stop, and why (`signal`: "SIGINT", "SIGTERM" or "cancel").

    cancel:      a threading.Event (or anything with is_set()); set means stop
    should_stop: a callable returning True to stop; called once per optimizer step
    parent:      an enclosing request; this one stops when it does
    """

    def __init__(self, cancel=None, should_stop=None, parent: "StopRequest | None" = None):
        self.signal: str | None = None
        self.cancel, self.should_stop, self.parent = cancel, should_stop, parent

    def __bool__(self) -> bool:
        if self.signal is None:
            if self.parent is not None and self.parent:
                self.signal = self.parent.signal
            elif self.cancel is not None and self.cancel.is_set():
                self.signal = "cancel"
            elif self.should_stop is not None and self.should_stop():
                self.signal = "cancel"
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
def stop_on_signals(request: StopRequest | None = None, *, install: bool = True,
                    repeat: bool = True) -> Iterator[StopRequest]:
    """Yield `request` (a fresh one by default), set by SIGINT/SIGTERM while the block
    runs if `install` and this is the main thread. Inside an outer guard it stops when
    the outer one does. repeat=False: a second signal is absorbed too, not acted on."""
    global _active
    request = request if request is not None else StopRequest()
    if _active is not None and threading.current_thread() is threading.main_thread():
        request.parent = _active           # nested: the outer guard listens for us
        yield request
        return
    if not install or threading.current_thread() is not threading.main_thread():
        yield request                      # signals only reach the main thread
        return
    previous = {s: signal.getsignal(s) or signal.SIG_DFL   # None: set outside Python
                for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if request.signal is None:
            request.signal = signal.Signals(signum).name
        for s, h in previous.items() if repeat else ():   # a second signal acts at once
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
