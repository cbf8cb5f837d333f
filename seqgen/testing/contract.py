"""What every contract kit shares: a failure names the kind, the property and the component."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def contract_property(kind: str, name: str, label: str):
    """Turn any failure inside into an AssertionError naming the property, e.g.
    "cell contract 'shapes' failed for lstm: ..."."""
    try:
        yield
    except Exception as error:  # a crash breaks the property as much as a wrong answer
        raise AssertionError(f"{kind} contract {name!r} failed for {label}: {error}") from error
