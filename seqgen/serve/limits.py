"""What one server accepts: per-request limits and the size of the shared batch.

Concurrency: at most `max_active_rows` rows (choices being generated) are in the batch at
once. A request whose rows do not fit waits, first come first served, until enough rows
leave; when `max_waiting` requests are already waiting, a new one is answered 429 at once
(OpenAI clients retry those by themselves). A request needing more rows than the whole
batch holds is refused with 400.
"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Limits:
    max_tokens: int = 4096          # largest `max_tokens` a request may ask for
    max_n: int = 16                 # largest `n`
    max_prompt_chars: int = 16_384  # longest prompt (and longest text to /v1/score)
    max_body_bytes: int = 1_048_576  # largest request body (413 beyond)
    max_active_rows: int = 256      # rows generated together in one batch
    max_waiting: int = 1024         # requests queued for rows before 429

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {f.name} must be a positive integer, got {value!r}")

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
