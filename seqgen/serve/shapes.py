"""The OpenAI response shapes: completions, their streamed chunks, models, usage.

A choice is {"index", "text", "logprobs", "finish_reason"}; with `logprobs` asked for,
"logprobs" is {"tokens", "token_logprobs", "top_logprobs", "text_offset"} (in every
streamed chunk too, lists possibly empty), else null.
"""
from __future__ import annotations

import secrets
import time

from .rows import Piece


def completion_id() -> str:
    return "cmpl-" + secrets.token_hex(12)


def choice(piece: Piece, logprobs: bool) -> dict:
    return {"index": piece.index, "text": piece.text,
            "logprobs": {"tokens": piece.tokens, "token_logprobs": piece.token_logprobs,
                         "top_logprobs": piece.top_logprobs,
                         "text_offset": piece.text_offset} if logprobs else None,
            "finish_reason": piece.finish_reason}


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion(ident: str, created: int, model: str, choices: list[dict],
               use: dict | None) -> dict:
    """A whole response (use=usage dict), or a streamed chunk (use=None, no usage key)."""
    body = {"id": ident, "object": "text_completion", "created": created, "model": model,
            "choices": choices}
    if use is not None:
        body["usage"] = use
    return body


def models(name: str, created: int) -> dict:
    return {"object": "list", "data": [model(name, created)]}


def model(name: str, created: int) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": "seqgen"}


def now() -> int:
    return int(time.time())
