"""Built-in decoding strategies."""
from seqgen import hookimpl

from .sampling import Greedy, Sample
from .teacher import TeacherForcing

TEMPERATURE = {"type": "number", "minimum": 0, "default": 1.0,
               "description": "Divide logits by this before sampling; 0 means greedy."}
TOP_K = {"type": ["integer", "null"], "minimum": 1, "default": None,
         "description": "Keep only the k most likely tokens (applied after temperature)."}
TOP_P = {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 1, "default": None,
         "description": "Keep the smallest set of tokens whose probability reaches p "
                        "(applied after top-k)."}


def _schema(**props) -> dict:
    return {"type": "object", "properties": props}


@hookimpl
def register_strategies(register):
    register("greedy", Greedy, _schema(), "Always the most likely token (argmax).")
    register("random", lambda: Sample(1.0), _schema(),
             "Draw from the model's full distribution (multinomial).")
    register("temperature", Sample,
             _schema(temperature={**TEMPERATURE, "default": 0.8}, top_k=TOP_K, top_p=TOP_P),
             "Sample after dividing logits by a temperature (with optional top-k/top-p).")
    register("top-k", lambda k=10, temperature=1.0, top_p=None: Sample(temperature, k, top_p),
             _schema(k={"type": "integer", "minimum": 1, "default": 10,
                        "description": "How many of the most likely tokens to keep."},
                     temperature=TEMPERATURE, top_p=TOP_P),
             "Sample among the k most likely tokens.")
    register("top-p", lambda p=0.9, temperature=1.0, top_k=None: Sample(temperature, top_k, p),
             _schema(p={**TOP_P, "type": "number", "default": 0.9}, temperature=TEMPERATURE,
                     top_k=TOP_K),
             "Nucleus sampling: the smallest set of tokens with probability at least p.")
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
                                          "reference is not fed."}),
             "Training: feed the reference (ratio 1), the model's own output, or a mix.")
