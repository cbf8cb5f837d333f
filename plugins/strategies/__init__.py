"""Built-in decoding strategies.

`sample` stacks logits processors (seqgen_plugins.processors, or any plugin's) in the
order given, then draws or takes the argmax. The older names are shorthands for fixed
chains (see sampling.py): repetition penalty -> temperature -> top-k -> top-p -> draw.
`beam` and `teacher-forcing` run their own search (seqgen.Strategy.search).
"""
from seqgen import hookimpl
# The shared option fragments (with the bounds that keep logits finite in float32).
from seqgen.options import REPETITION_PENALTY, TEMPERATURE, TOP_K, TOP_P

from .beam import MAX_LENGTH_PENALTY, BeamSearch
from .sampling import Chain, Greedy, Random, Sample
from .teacher import TeacherForcing


def _schema(**props) -> dict:
    return {"type": "object", "properties": props}


def top_k(k=10, temperature=1.0, top_p=None, repetition_penalty=1.0):
    return Sample(temperature, k, top_p, repetition_penalty, name="top-k",
                  labels={"top_k": "k"})


def top_p(p=0.9, temperature=1.0, top_k=None, repetition_penalty=1.0):
    return Sample(temperature, top_k, p, repetition_penalty, name="top-p",
                  labels={"top_p": "p"})


@hookimpl
def register_strategies(register):
    register("greedy", Greedy, _schema(repetition_penalty=REPETITION_PENALTY),
             "Always the most likely token (argmax).")
    register("random", Random, _schema(repetition_penalty=REPETITION_PENALTY),
             "Draw from the model's full distribution (multinomial).")
    register("temperature", Sample,
             _schema(temperature={**TEMPERATURE, "default": 0.8}, top_k=TOP_K, top_p=TOP_P,
                     repetition_penalty=REPETITION_PENALTY),
             "Sample after dividing logits by a temperature (with optional top-k/top-p).")
    register("top-k", top_k,
             _schema(k={"type": "integer", "minimum": 1, "default": 10,
                        "description": "How many of the most likely tokens to keep."},
                     temperature=TEMPERATURE, top_p=TOP_P,
                     repetition_penalty=REPETITION_PENALTY),
             "Sample among the k most likely tokens.")
    register("top-p", top_p,
             _schema(p={**TOP_P, "type": "number", "default": 0.9}, temperature=TEMPERATURE,
                     top_k=TOP_K, repetition_penalty=REPETITION_PENALTY),
             "Nucleus sampling: the smallest set of tokens with probability at least p.")
    register("sample", Chain,
             _schema(processors={"type": "array", "default": [],
                                 "items": {"type": "object", "required": ["type"],
                                           "properties": {"type": {"type": "string"}},
                                           "x-seqgen-kind": "processor"},
                                 "description": 'Logits processors, applied in this '
                                                'order, each an object such as {"type": '
                                                '"min-p", "p": 0.05}.'},
                     choice={"enum": ["draw", "argmax"], "default": "draw",
                             "description": "How the token is picked from what the "
                                            "processors leave: drawn from its softmax, or "
                                            "the most likely."}),
             "Any stack of logits processors, then a draw or the argmax.")
    register("beam", BeamSearch,
             _schema(width={"type": "integer", "minimum": 1, "default": 4,
                            "description": "Partial sequences kept per prompt; num_samples "
                                           "of the best are returned (at most width)."},
                     length_penalty={"type": "number", "minimum": -MAX_LENGTH_PENALTY,
                                     "maximum": MAX_LENGTH_PENALTY, "default": 1.0,
                                     "description": "Score = sum(log p) / length ** this "
                                                    "(0 favours short sequences, 1 ranks by "
                                                    "mean log-prob)."}),
             "Beam search: the most probable sequences, with their scores.",
             # num_samples may not exceed this option (a spec is checked before training)
             max_samples="width")
    register("teacher-forcing", TeacherForcing,
             _schema(ratio={"type": "number", "minimum": 0, "maximum": 1, "default": 1.0,
                            "description": "Probability of feeding the reference token."},
                     decay={"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                            "default": 1.0,
                            "description": "Multiply the ratio by this every epoch "
                                           "(scheduled sampling)."},
                     min_ratio={"type": "number", "minimum": 0, "maximum": 1, "default": 0.0},
                     free={"enum": ["greedy", "sample"], "default": "greedy",
                           "description": "How the model's own token is picked when the "
                                          "reference is not fed."},
                     reference={"type": ["string", "null"], "default": None,
                                "description": "Generation: the text to follow after each "
                                               "prompt and score (per-token log-probs, "
                                               "perplexity). Training ignores it."}),
             "Training: feed the reference (ratio 1), the model's own output, or a mix. "
             "Generation: score a reference text.")
