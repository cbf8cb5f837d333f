"""Reusable pieces of option schemas, so a plugin does not copy the built-ins' ones.

Each UPPER_CASE name is the JSON Schema (Draft 2020-12) of one option, with its default
and description, exactly as the built-in components use it; the groups (`CELL_OPTIONS`,
`PATH_OPTIONS`, ...) map option names to those schemas. Build a component's schema with
`options_schema`:

    from seqgen.options import HIDDEN_SIZE, NUM_LAYERS, options_schema

    SCHEMA = options_schema(
        title="My cell options",
        hidden_size=HIDDEN_SIZE,
        num_layers={**NUM_LAYERS, "default": 2},        # change a default: copy, then edit
        gain={"type": "number", "exclusiveMinimum": 0, "default": 1.0,
              "description": "Scale of the recurrent weights."},
    )
    register("my-cell", MyCell, SCHEMA, "One line shown by `seqgen plugins`.")

The fragments are shared: never edit one in place (copy it as above). `options_schema`
copies what it is given, so the schema it returns is yours to change.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

# -- cells: factory(input_size, **options) ----------------------------------------------------
HIDDEN_SIZE = {
    "type": "integer", "minimum": 1, "default": 128,
    "description": "Features in the hidden state h (and the LSTM cell state c), per direction.",
}
NUM_LAYERS = {
    "type": "integer", "minimum": 1, "default": 1,
    "description": "Stacked recurrent layers; layer k+1 reads layer k's output sequence.",
}
DROPOUT = {
    "type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.0,
    "description": "Dropout probability on the output of every layer but the last, "
                   "in training only (no effect with one layer).",
}
BIDIRECTIONAL = {
    "type": "boolean", "default": False,
    "description": "Also run every layer right-to-left and concatenate: output size "
                   "2 * hidden_size. Not usable for generation.",
}
BIAS = {
    "type": "boolean", "default": True,
    "description": "Learn the bias vectors b_ih and b_hh.",
}
INITIAL_STATE = {
    "enum": ["zeros", "learned"], "default": "zeros",
    "description": "State a sequence starts from: all zeros, or a learned vector per "
                   "layer and direction shared by every row of the batch.",
}
NONLINEARITY = {
    "enum": ["tanh", "relu"], "default": "tanh",
    "description": "Activation of the Elman RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh).",
}
#: The options every built-in cell takes (the RNN adds `nonlinearity`).
CELL_OPTIONS = {
    "hidden_size": HIDDEN_SIZE, "num_layers": NUM_LAYERS, "dropout": DROPOUT,
    "bidirectional": BIDIRECTIONAL, "bias": BIAS, "initial_state": INITIAL_STATE,
}

# -- datasets: factory(**options) ------------------------------------------------------------
PATH = {
    "type": "string", "minLength": 1,
    "description": "One UTF-8 file or a glob (e.g. 'data/*.txt'), relative to the "
                   "working directory. Give this or 'paths'.",
}
PATHS = {
    "type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
    "description": "Several files or globs, read in order and joined.",
}
LEVEL = {
    "enum": ["char", "word"], "default": "char",
    "description": "Tokens are characters or words.",
}
PATTERN = {
    "type": ["string", "null"], "default": None,
    "description": "Word level: a regex whose matches are the words (e.g. '[a-z]+'); "
                   "null splits on whitespace.",
}
MIN_FREQ = {
    "type": "integer", "minimum": 1, "default": 1,
    "description": "Word level: words seen fewer times become <unk>.",
}
LOWERCASE = {
    "type": "boolean", "default": False,
    "description": "Lowercase the text before tokenizing.",
}
#: Where a file-based dataset reads from (`seqgen_plugins.datasets.files` resolves them).
PATH_OPTIONS = {"path": PATH, "paths": PATHS}
#: How text becomes tokens (see `seqgen.Vocab`: level, pattern, lowercase).
LEVEL_OPTIONS = {"level": LEVEL, "pattern": PATTERN, "min_freq": MIN_FREQ,
                 "lowercase": LOWERCASE}


def valid_fraction_option(default: float = 0.1) -> dict:
    """The `valid_fraction` option with this default: the tail held out for validation."""
    return {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": default,
            "description": "Fraction held out for validation, from the end of the data; "
                           "0 means no validation split."}


# -- samplers: factory(split, *, seed, rank, world_size, **options) ---------------------------
BATCH_SIZE = {
    "type": "integer", "minimum": 1, "default": 32,
    "description": "Rows per batch, over all processes together "
                   "(each of world_size processes gets about 1/world_size).",
}
NUM_STEPS = {
    "type": "integer", "minimum": 1, "default": 35,
    "description": "Time steps per batch (T): each row is T inputs whose "
                   "targets are the next T tokens.",
}
#: The options of a sampler that cuts windows from a token stream.
STREAM_OPTIONS = {"batch_size": BATCH_SIZE, "num_steps": NUM_STEPS}

# -- strategies: factory(**options) -----------------------------------------------------------
# Bounds that keep float32 logits finite: they are divided by a temperature and by (or
# multiplied by) a repetition penalty; past these, one logit can overflow to inf, and
# softmax then gives NaN. A probability below MIN_P would round to 0 in float32.
MIN_TEMPERATURE = 1e-4
PENALTY_RANGE = (1e-4, 10_000)
MIN_P = 1e-6
TEMPERATURE = {
    "type": "number", "minimum": 0, "default": 1.0,
    "not": {"exclusiveMinimum": 0, "exclusiveMaximum": MIN_TEMPERATURE},
    "description": f"Divide logits by this before sampling; 0 means greedy. Otherwise at "
                   f"least {MIN_TEMPERATURE:g} (below that, logits overflow float32).",
}
TOP_K = {
    "type": ["integer", "null"], "minimum": 1, "default": None,
    "description": "Keep only the k most likely tokens (applied after temperature).",
}
TOP_P = {
    "type": ["number", "null"], "minimum": MIN_P, "maximum": 1, "default": None,
    "description": "Keep the smallest set of tokens whose probability reaches p "
                   "(applied after top-k).",
}
REPETITION_PENALTY = {
    "type": "number", "minimum": PENALTY_RANGE[0], "maximum": PENALTY_RANGE[1],
    "default": 1.0,
    "description": "CTRL-style, applied first: logits of tokens already in the prompt or "
                   "output are divided by this when positive, multiplied when negative "
                   "(> 1 discourages repeats; 1 is off).",
}


def options_schema(*groups: Mapping[str, dict], title: str | None = None,
                   description: str | None = None, **properties: dict) -> dict:
    """A component's options schema: {"title"?, "description"?, "properties": {...}}.

    `groups` (e.g. CELL_OPTIONS) and then the keyword `properties` (name=fragment) are
    merged in order, a later name replacing an earlier one. Everything is deep-copied.
    Give every option a "default": the object of the defaults must satisfy the schema
    (checked when the component is registered). seqgen adds "type": "object", the
    component's "type" property, and forbids unknown keys unless the schema sets
    "additionalProperties" itself (`seqgen.Component`).
    """
    merged: dict[str, Any] = {}
    for group in groups:
        merged.update(group)
    merged.update(properties)
    schema: dict[str, Any] = {}
    if title is not None:
        schema["title"] = title
    if description is not None:
        schema["description"] = description
    schema["properties"] = copy.deepcopy(merged)
    return schema


__all__ = [
    "HIDDEN_SIZE", "NUM_LAYERS", "DROPOUT", "BIDIRECTIONAL", "BIAS", "INITIAL_STATE",
    "NONLINEARITY", "CELL_OPTIONS", "PATH", "PATHS", "LEVEL", "PATTERN", "MIN_FREQ",
    "LOWERCASE", "PATH_OPTIONS", "LEVEL_OPTIONS", "valid_fraction_option", "BATCH_SIZE",
    "NUM_STEPS", "STREAM_OPTIONS", "TEMPERATURE", "TOP_K", "TOP_P", "REPETITION_PENALTY",
    "MIN_TEMPERATURE", "PENALTY_RANGE", "MIN_P", "options_schema",
]
