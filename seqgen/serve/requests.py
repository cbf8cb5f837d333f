"""Checking request bodies: JSON in, a `Completion` (or a RequestError naming the field).

The OpenAI completions fields are read with OpenAI's defaults (max_tokens 16,
temperature 1, top_p 1, n 1). Unknown fields are ignored, as OpenAI clients send extras
(`user`, ...); known fields of the wrong type, out of range, or asking for something
seqgen cannot do (echo, suffix, penalties, logit_bias, token-id prompts) are refused.
seqgen's own decoding strategies come in the extra field `strategy` (a name or a spec
object); temperature/top_p are turned into the equivalent seqgen strategy.
"""
from __future__ import annotations

import copy
import json
import math
import secrets
from dataclasses import dataclass
from functools import cached_property

from .errors import RequestError
from .limits import Limits

MAX_STOPS = 4          # as OpenAI
MAX_LOGPROBS = 5       # as OpenAI
MIN_TEMPERATURE = 1e-4  # below this (and above 0) float32 logits overflow
SEED_RANGE = (-2**63, 2**63 - 1)


@dataclass
class Completion:
    """A checked completions request (prompts still text; see app.bind for the model)."""
    prompts: list[str]
    max_tokens: int
    n: int
    stops: tuple[str, ...]
    seed: int
    stream: bool
    include_usage: bool
    logprobs: int | None
    strategy: str | dict          # seqgen strategy name or spec object
    strategy_param: str           # the field to blame when the strategy is refused
    model: str | None

    @cached_property
    def key(self) -> str:
        """Rows whose requests share this key use the same strategy (processed together).
        Computed once: the engine groups rows by it at every step."""
        return json.dumps(self.strategy, sort_keys=True)


def parse_json(raw: bytes):
    """The body as JSON; NaN/Infinity and invalid UTF-8 are malformed too."""
    def refuse(name):
        raise ValueError(f"{name} is not valid JSON")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=refuse)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(f"the request body is not valid JSON ({e})", None,
                           code="invalid_json") from None


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))


def _bounded(body, name, default, low, high, integer: bool, high_note=""):
    """body[name] checked as an integer (or any finite number) in [low, high]; default
    when absent. Errors name the field."""
    v = body.get(name)
    if v is None:
        return default
    if not (is_int(v) if integer else is_number(v)):
        raise RequestError(f"'{name}' must be {'an integer' if integer else 'a number'}, got "
                           f"{json.dumps(v)}", name, code="invalid_type")
    if v < low or v > high:
        show = str if integer else (lambda x: f"{x:g}")       # seeds: all their digits
        raise RequestError(f"'{name}' must be between {show(low)} and {show(high)}"
                           f"{high_note}, got {show(v)}", name, code="invalid_value")
    return v if integer else float(v)


def _int(body, name, default, low, high, high_note=""):
    return _bounded(body, name, default, low, high, True, high_note)


def _number(body, name, low, high):
    return _bounded(body, name, None, low, high, False)


def _text_list(body, name, limit_items=None) -> list[str] | None:
    v = body.get(name)
    if v is None:
        return None
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        hint = (" (token-id prompts are not supported: send text)"
                if name == "prompt" and isinstance(items, list) and items
                and all(is_int(t) or isinstance(t, list) for t in items) else "")
        raise RequestError(f"'{name}' must be a string or a list of strings{hint}", name,
                           code="invalid_type")
    if limit_items is not None and len(items) > limit_items:
        raise RequestError(f"'{name}' may hold at most {limit_items} strings, got "
                           f"{len(items)}", name, code="invalid_value")
    return items


def _unsupported(body) -> None:
    """OpenAI fields seqgen cannot honour: refused unless they ask for the default."""
    n = body.get("n") or 1
    default = {"echo": lambda v: v is None or v is False,
               "suffix": lambda v: v is None,
               "presence_penalty": lambda v: v is None or (is_number(v) and v == 0),
               "frequency_penalty": lambda v: v is None or (is_number(v) and v == 0),
               "logit_bias": lambda v: v is None or v == {},
               "best_of": lambda v: v is None or (is_int(v) and v in (1, n))}
    for name, ok in default.items():
        if name in body and not ok(body[name]):
            extra = (" (use the 'strategy' field, e.g. {\"type\": \"top-k\", \"k\": 10, "
                     "\"repetition_penalty\": 1.2})" if name.endswith("penalty") else "")
            raise RequestError(f"'{name}' is not supported by seqgen serve{extra}", name,
                               code="unsupported_parameter")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise RequestError("'user' must be a string", "user", code="invalid_type")


def _strategy(body) -> tuple[str | dict, str]:
    """(seqgen strategy, field to blame) from `strategy` or temperature/top_p."""
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    given = body.get("strategy")
    if given is not None:
        moved = [n for n, v in (("temperature", temperature), ("top_p", top_p))
                 if v is not None and v != 1]
        if moved:
            raise RequestError(f"'strategy' and {' and '.join(repr(m) for m in moved)} "
                               f"were both given: put the sampling options inside "
                               f"'strategy' (e.g. {{\"type\": \"top-k\", \"k\": 5, "
                               f"\"temperature\": 0.8}})", "strategy",
                               code="conflicting_parameters")
        if isinstance(given, str) or (isinstance(given, dict)
                                      and isinstance(given.get("type"), str)):
            return copy.deepcopy(given), "strategy"
        raise RequestError("'strategy' must be a strategy name or an object with a "
                           "\"type\" (e.g. {\"type\": \"top-k\", \"k\": 5})", "strategy",
                           code="invalid_type")
    if temperature == 0:
        return "greedy", "temperature"
    if temperature is not None and temperature < MIN_TEMPERATURE:
        raise RequestError(f"'temperature' must be 0 (greedy) or at least "
                           f"{MIN_TEMPERATURE:g}, got {temperature:g}", "temperature",
                           code="invalid_value")
    if top_p == 0:
        raise RequestError("'top_p' must be above 0", "top_p", code="invalid_value")
    t = 1.0 if temperature is None else temperature
    p = None if top_p is None or top_p == 1 else top_p
    if t == 1 and p is None:
        return "random", "temperature"
    spec = {"type": "temperature", "temperature": t}
    return ({**spec, "top_p": p} if p is not None else spec), (
        "top_p" if p is not None else "temperature")


def parse_completion(body, limits: Limits) -> Completion:
    """Check a completions body (already parsed JSON) against the OpenAI shape and limits."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", None, code="invalid_type")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("'model' must be a string", "model", code="invalid_type")
    prompts = _text_list(body, "prompt")
    prompts = [""] if prompts is None else prompts
    if not prompts:
        raise RequestError("'prompt' must not be an empty list", "prompt", code="invalid_value")
    for i, p in enumerate(prompts):
        if len(p) > limits.max_prompt_chars:
            raise RequestError(f"prompt {i} has {len(p)} characters; this server takes at "
                               f"most {limits.max_prompt_chars}", "prompt",
                               code="invalid_value")
    max_tokens = _int(body, "max_tokens", 16, 0, limits.max_tokens, " (the server's limit)")
    n = _int(body, "n", 1, 1, limits.max_n, " (the server's limit)")
    if len(prompts) * n > limits.max_active_rows:
        raise RequestError(f"{len(prompts)} prompt(s) x n={n} is {len(prompts) * n} "
                           f"choices; this server generates at most {limits.max_active_rows} "
                           f"at once", "n" if n > 1 else "prompt", code="invalid_value")
    stops = _text_list(body, "stop", MAX_STOPS) or []
    if any(not s for s in stops):
        raise RequestError("'stop' strings must not be empty", "stop", code="invalid_value")
    seed = _int(body, "seed", None, *SEED_RANGE)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise RequestError("'stream' must be true or false", "stream", code="invalid_type")
    options = body.get("stream_options")
    if options is not None and not (isinstance(options, dict) and isinstance(
            options.get("include_usage", False), bool)):
        raise RequestError("'stream_options' must be an object like {\"include_usage\": true}",
                           "stream_options", code="invalid_type")
    logprobs = _int(body, "logprobs", None, 0, MAX_LOGPROBS)
    _unsupported(body)
    strategy, blame = _strategy(body)
    return Completion(prompts=prompts, max_tokens=max_tokens, n=n, stops=tuple(stops),
                      seed=secrets.randbits(62) if seed is None else seed,
                      stream=bool(stream), include_usage=bool((options or {}).get("include_usage")),
                      logprobs=logprobs, strategy=strategy, strategy_param=blame, model=model)


def parse_score(body, limits: Limits) -> str:
    """The text of a /v1/score body {"text": "..."}."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object", None, code="invalid_type")
    text = body.get("text")
    if not isinstance(text, str):
        raise RequestError("'text' must be a string", "text", code="invalid_type")
    if len(text) > limits.max_prompt_chars:
        raise RequestError(f"'text' has {len(text)} characters; this server takes at most "
                           f"{limits.max_prompt_chars}", "text", code="invalid_value")
    return text
