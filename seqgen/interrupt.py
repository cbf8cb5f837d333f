"""Ctrl-C and SIGTERM as a request to stop at the next safe point.

While training, the first SIGINT or SIGTERM only sets a flag; the trainer checks it after
each optimizer step, saves a checkpoint and returns. A second signal restores the default
behaviour (KeyboardInterrupt), for a user who really wants out now.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class StopRequest:
    def __init__(self):
        self.signal: str | None = None

    def __bool__(self) -> bool:
        return self.signal is not None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request                      # signals only reach the main thread
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        request.signal = signal.Signals(signum).name
        for s, h in previous.items():      # a second signal acts at once
            signal.signal(s, h)

    for s in previous:
        signal.signal(s, handler)
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
