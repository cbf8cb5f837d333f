"""Built-in logits processors, stacked in order by the `sample` strategy:

    {"type": "sample", "processors": [{"type": "repetition-penalty", "penalty": 1.3},
                                      {"type": "temperature", "temperature": 0.7},
                                      {"type": "min-p", "p": 0.05}]}

The shorthand strategies (temperature, top-k, top-p, ...) are fixed chains of these.
"""
from seqgen import hookimpl
from seqgen.options import MIN_P, MIN_TEMPERATURE, PENALTY_RANGE

from .filters import MinP, TopK, TopP, TypicalP
from .repetition import RepetitionPenalty
from .temperature import Temperature


def _schema(name: str, spec: dict, description: str) -> dict:
    return {"type": "object", "properties": {name: {**spec, "description": description}}}


@hookimpl
def register_processors(register):
    register("repetition-penalty", RepetitionPenalty,
             _schema("penalty", {"type": "number", "minimum": PENALTY_RANGE[0],
                                 "maximum": PENALTY_RANGE[1], "default": 1.2},
                     "Logits of tokens already in the prompt or output are divided by this "
                     "when positive, multiplied when negative (> 1 discourages repeats; 1 "
                     "is off)."),
             "CTRL repetition penalty on tokens each row has already seen.")
    register("temperature", Temperature,
             _schema("temperature", {"type": "number", "minimum": 0, "default": 0.8,
                                     "not": {"exclusiveMinimum": 0,
                                             "exclusiveMaximum": MIN_TEMPERATURE}},
                     f"Divide logits by this: < 1 sharpens, > 1 flattens, 0 keeps only the "
                     f"most likely token; otherwise at least {MIN_TEMPERATURE:g} (below "
                     f"that, logits overflow float32)."),
             "Scale logits by 1 / temperature.")
    register("top-k", TopK,
             _schema("k", {"type": "integer", "minimum": 1, "default": 10},
                     "How many of the most likely tokens to keep."),
             "Keep the k most likely tokens.")
    register("top-p", TopP,
             _schema("p", {"type": "number", "minimum": MIN_P, "maximum": 1,
                           "default": 0.9},
                     "Keep the smallest set of most likely tokens whose probability "
                     "reaches this (1 keeps all)."),
             "Nucleus filtering: the most likely tokens up to probability p.")
    register("min-p", MinP,
             _schema("p", {"type": "number", "minimum": 0, "maximum": 1, "default": 0.1},
                     "Keep tokens whose probability is at least this times the most likely "
                     "token's (0 keeps all)."),
             "Keep tokens at least p times as likely as the best one.")
    register("typical-p", TypicalP,
             _schema("p", {"type": "number", "minimum": MIN_P, "maximum": 1,
                           "default": 0.95},
                     "Keep the smallest set of most typical tokens (information closest to "
                     "the entropy) whose probability reaches this (1 keeps all)."),
             "Locally typical filtering (Meister et al.).")
