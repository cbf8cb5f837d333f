"""seqgen's messages for people go through the standard `logging` module.

    seqgen            the root of seqgen's loggers
    seqgen.plugins    plugin load failures, refused registrations, SEQGEN_PLUGINS notes
                      (WARNING); the traceback of a failure (DEBUG)
    seqgen.run        a run's "warning" events (WARNING)

As the standard library advises for libraries, seqgen only emits records: it installs no
handler and sets no level, except one NullHandler on "seqgen", so that an application
that configures no logging at all does not get seqgen's warnings on stderr through
logging's last-resort handler. An application shows them by configuring logging as it
likes (e.g. `logging.basicConfig()`); the `seqgen` command installs its own handler,
which prints "warning: <message>" on stderr, for as long as a command runs.

Each record carries what it is about: `record.seqgen_failure` (a LoadFailure) on plugin
failures, `record.seqgen_event` (an Event) on run warnings.
"""
from __future__ import annotations

import logging

LOGGER_NAME = "seqgen"

logger = logging.getLogger(LOGGER_NAME)
logger.addHandler(logging.NullHandler())
plugins_logger = logging.getLogger(f"{LOGGER_NAME}.plugins")
run_logger = logging.getLogger(f"{LOGGER_NAME}.run")


def log_event(event) -> None:
    """Log the run events that are messages for people: a "warning" Event becomes a
    WARNING record on "seqgen.run" (the message as is). Others are not logged."""
    if event.kind == "warning":
        run_logger.warning("%s", event.data.get("message", ""), extra={"seqgen_event": event})
