"""Built-in datasets."""
from seqgen import hookimpl

from .lines import DESCRIPTION as LINES_DESCRIPTION
from .lines import LINES_SCHEMA, build_lines_dataset
from .pairs import DESCRIPTION as PAIRS_DESCRIPTION
from .pairs import PAIRS_SCHEMA, build_pairs_dataset
from .reversal import DESCRIPTION as REVERSAL_DESCRIPTION
from .reversal import REVERSAL_SCHEMA, build_reversal
from .synthetic import SCHEMA as SYNTHETIC_SCHEMA
from .synthetic import build_synthetic
from .text import DESCRIPTION as TEXT_DESCRIPTION
from .text import TEXT_SCHEMA, build_text_dataset
from .translation import DESCRIPTION as TRANSLATION_DESCRIPTION
from .translation import TRANSLATION_SCHEMA, build_translation_dataset


@hookimpl
def register_datasets(register):
    register("synthetic", build_synthetic, SYNTHETIC_SCHEMA,
             "Built-in sentences from a tiny grammar; needs no file.", task="lm")
    register("text", build_text_dataset, TEXT_SCHEMA, TEXT_DESCRIPTION, task="lm")
    register("lines", build_lines_dataset, LINES_SCHEMA, LINES_DESCRIPTION, task="lines")
    register("pairs", build_pairs_dataset, PAIRS_SCHEMA, PAIRS_DESCRIPTION, task="aligned")
    register("translation", build_translation_dataset, TRANSLATION_SCHEMA,
             TRANSLATION_DESCRIPTION, task="seq2seq")
    register("reversal", build_reversal, REVERSAL_SCHEMA, REVERSAL_DESCRIPTION,
             task="seq2seq")
