"""Built-in datasets."""
from seqgen import hookimpl

from .lines import DESCRIPTION as LINES_DESCRIPTION
from .lines import LINES_SCHEMA, build_lines_dataset
from .pairs import DESCRIPTION as PAIRS_DESCRIPTION
from .pairs import PAIRS_SCHEMA, build_pairs_dataset
from .synthetic import SCHEMA as SYNTHETIC_SCHEMA
from .synthetic import build_synthetic
from .text import DESCRIPTION as TEXT_DESCRIPTION
from .text import TEXT_SCHEMA, build_text_dataset


@hookimpl
def register_datasets(register):
    register("synthetic", build_synthetic, SYNTHETIC_SCHEMA,
             "Built-in sentences from a tiny grammar; needs no file.", task="lm")
    register("text", build_text_dataset, TEXT_SCHEMA, TEXT_DESCRIPTION, task="lm")
    register("lines", build_lines_dataset, LINES_SCHEMA, LINES_DESCRIPTION, task="lines")
    register("pairs", build_pairs_dataset, PAIRS_SCHEMA, PAIRS_DESCRIPTION, task="aligned")
