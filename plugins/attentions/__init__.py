"""Built-in attention mechanisms for encoder-decoder models:

    {"type": "none"}                                   the encoder's last real output
    {"type": "bahdanau", "size": 32}                   additive, v^T tanh(W_q q + W_k m)
    {"type": "luong", "score": "general", "scale": false}   multiplicative, q^T W m or q . m
"""
from seqgen import hookimpl

from .bahdanau import Additive
from .luong import SCORES, Multiplicative
from .none import LastPosition

NONE_SCHEMA = {"type": "object", "properties": {}}
BAHDANAU_SCHEMA = {
    "type": "object",
    "properties": {
        "size": {"type": ["integer", "null"], "minimum": 1, "default": None,
                 "description": "Hidden size of the scoring MLP (null: the query size, "
                                "the decoder's hidden size)."},
    },
}
LUONG_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"enum": list(SCORES), "default": "general",
                  "description": "\"dot\": q . m (query and memory sizes must be equal); "
                                 "\"general\": q^T W m with a learned W."},
        "scale": {"type": "boolean", "default": False,
                  "description": "Divide the scores by sqrt(query size)."},
    },
}


@hookimpl
def register_attentions(register):
    register("none", LastPosition, NONE_SCHEMA,
             "No learned attention: the context is the encoder's output at the last real "
             "source position (d2l's plain Seq2Seq).")
    register("bahdanau", Additive, BAHDANAU_SCHEMA,
             "Additive attention (Bahdanau et al. 2015): v^T tanh(W_q q + W_k m).")
    register("luong", Multiplicative, LUONG_SCHEMA,
             "Multiplicative attention (Luong et al. 2015): q . m or q^T W m.")
