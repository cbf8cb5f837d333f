"""JSON Schemas of the cells' options (Draft 2020-12, without the "type" key the core adds).

Every property has a default and a description; the defaults are the keyword defaults of
`RecurrentCell.__init__` (tests/test_cells.py holds the two together).
"""
from __future__ import annotations

COMMON = {
    "hidden_size": {
        "type": "integer", "minimum": 1, "default": 128,
        "description": "Features in the hidden state h (and the LSTM cell state c), per direction.",
    },
    "num_layers": {
        "type": "integer", "minimum": 1, "default": 1,
        "description": "Stacked recurrent layers; layer k+1 reads layer k's output sequence.",
    },
    "dropout": {
        "type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.0,
        "description": "Dropout probability on the output of every layer but the last, "
                       "in training only (no effect with one layer).",
    },
    "bidirectional": {
        "type": "boolean", "default": False,
        "description": "Also run every layer right-to-left and concatenate: output size "
                       "2 * hidden_size. Not usable for generation.",
    },
    "bias": {
        "type": "boolean", "default": True,
        "description": "Learn the bias vectors b_ih and b_hh.",
    },
    "initial_state": {
        "enum": ["zeros", "learned"], "default": "zeros",
        "description": "State a sequence starts from: all zeros, or a learned vector per "
                       "layer and direction shared by every row of the batch.",
    },
}

NONLINEARITY = {
    "nonlinearity": {
        "enum": ["tanh", "relu"], "default": "tanh",
        "description": "Activation of the Elman RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh).",
    },
}


def _schema(title: str, properties: dict) -> dict:
    return {"title": title, "properties": properties}


RNN_SCHEMA = _schema("Elman RNN cell options", {**COMMON, **NONLINEARITY})
GRU_SCHEMA = _schema("GRU cell options", dict(COMMON))
LSTM_SCHEMA = _schema("LSTM cell options", dict(COMMON))
