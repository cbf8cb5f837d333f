"""JSON Schemas of the cells' options (Draft 2020-12, without the "type" key the core adds).

Built from the public fragments in `seqgen.options`, which third-party cells reuse too,
plus the built-ins' own `init`, `output_dropout` and `layer_norm` below. Every property
has a default and a description; the defaults are the keyword defaults of the cells'
constructors (tests/test_cells.py holds the two together).
"""
from __future__ import annotations

from seqgen import options

from .init import TYPES

INIT = {
    "type": "object", "default": {"type": "default"},
    "properties": {
        "type": {"enum": list(TYPES), "description": "The scheme."},
        "std": {"type": "number", "exclusiveMinimum": 0,
                "description": "normal only: the standard deviation (0.01 if not given)."},
        "a": {"type": "number", "exclusiveMinimum": 0,
              "description": "uniform only: the bound, U(-a, a) (0.1 if not given)."},
    },
    "required": ["type"], "additionalProperties": False,
    "allOf": [
        {"if": {"required": ["std"]}, "then": {"properties": {"type": {"const": "normal"}}}},
        {"if": {"required": ["a"]}, "then": {"properties": {"type": {"const": "uniform"}}}},
    ],
    "description": "How the recurrent weights are drawn (from the run's seed), the same "
                   "for the fused and scratch form: {\"type\": \"default\"} torch's "
                   "U(-1/sqrt(H), 1/sqrt(H)) on every parameter; \"normal\" (\"std\", "
                   "default 0.01) and \"uniform\" (U(-a, a), \"a\" default 0.1) on the "
                   "weights; \"xavier\" xavier_uniform on each gate's block of W_ih and "
                   "W_hh; \"orthogonal\" orthogonal on each gate's block of W_hh and "
                   "xavier_uniform on W_ih's. All but \"default\" zero the biases.",
}
OUTPUT_DROPOUT = {
    "type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.0,
    "description": "Dropout probability on the output of the last layer (what the "
                   "decoder reads), in training only.",
}
LAYER_NORM = {
    "type": "boolean", "default": False,
    "description": "Layer normalisation (Ba et al. 2016) of every gate's pre-activation "
                   "(and of the LSTM's cell state before its tanh), with a learned gain "
                   "and bias per gate.",
}


def _refused(scratch: str) -> dict:
    """layer_norm for a fused cell: only false; true names the scratch cell."""
    return {"type": "boolean", "default": False, "not": {"const": True},
            "description": f'layer_norm needs the scratch cell: use "{scratch}"'}


BUILTIN_OPTIONS = {**options.CELL_OPTIONS, "init": INIT, "output_dropout": OUTPUT_DROPOUT}

RNN_SCHEMA = options.options_schema(BUILTIN_OPTIONS, nonlinearity=options.NONLINEARITY,
                                    title="Elman RNN cell options")
GRU_SCHEMA = options.options_schema(BUILTIN_OPTIONS, layer_norm=_refused("gru-scratch"),
                                    title="GRU cell options")
LSTM_SCHEMA = options.options_schema(BUILTIN_OPTIONS, layer_norm=_refused("lstm-scratch"),
                                     title="LSTM cell options")
GRU_SCRATCH_SCHEMA = options.options_schema(BUILTIN_OPTIONS, layer_norm=LAYER_NORM,
                                            title="GRU (scratch) cell options")
LSTM_SCRATCH_SCHEMA = options.options_schema(BUILTIN_OPTIONS, layer_norm=LAYER_NORM,
                                             title="LSTM (scratch) cell options")
