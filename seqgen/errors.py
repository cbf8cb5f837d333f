"""Every error seqgen raises on purpose.

Each one carries a message a user can act on. The CLI turns them into one paragraph on
stderr and an exit code (`exit_code`): 2 for usage and spec errors, 1 for failures
during a run. Nothing here imports torch or any other part of seqgen.

Every one of them pickles (so it crosses from a worker process to its parent: compare
with jobs > 1, a ProcessPoolExecutor in an embedding application), whatever its
__init__ takes: `SeqgenError.__reduce__` rebuilds an error from its class, its args
(the message) and its attributes, without calling __init__ again. Subclasses, a
plugin's included, get this for free; one that keeps an attribute which cannot be
pickled (a lock, an open file) should drop it in its own __reduce__.
"""
from __future__ import annotations

from typing import Any


def _rebuild(cls: type, args: tuple) -> "SeqgenError":
    """An instance of `cls` holding `args`, made without calling cls.__init__ (whose
    parameters are the caller's, not the message); pickle then restores __dict__."""
    error = cls.__new__(cls)
    error.args = args
    return error


class SeqgenError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    exit_code = 1

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own __reduce__ gives (cls, self.args, __dict__): unpickling calls
        # cls(*args), i.e. a custom __init__ with the finished message as its first
        # parameter (SpecError(message) made one problem per character).
        return _rebuild, (type(self), self.args), dict(self.__dict__) or None


class SpecError(SeqgenError):
    """A spec that cannot be run. Holds every problem found, each with its JSON path."""

    exit_code = 2

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        if len(self.problems) == 1:
            text = f"{where}invalid spec: {self.problems[0]}"
        else:
            lines = "\n".join(f"  {p}" for p in self.problems)
            text = f"{where}invalid spec ({len(self.problems)} problems):\n{lines}"
        super().__init__(text)


class UnknownComponentError(SeqgenError):
    """A spec or call named a component that no loaded plugin registers."""

    exit_code = 2


class PluginError(SeqgenError):
    """A plugin failed to load or registered something invalid."""

    exit_code = 1


class ScaffoldError(PluginError):
    """`seqgen plugins new` was asked for something it cannot make (a usage error)."""

    exit_code = 2


class DataError(SeqgenError):
    """A corpus that is missing, unreadable, undecodable or too small."""

    exit_code = 1


class CheckpointError(SeqgenError):
    """A checkpoint that is missing, corrupt, or does not fit what it is used with."""

    exit_code = 1


class GenerationError(SeqgenError):
    """Generation was asked for something the model cannot do (e.g. unknown characters)."""

    exit_code = 1


class TrainingError(SeqgenError):
    """Training stopped because it diverged or could not continue."""

    exit_code = 1
