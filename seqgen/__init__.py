"""seqgen: train recurrent language models and generate text with them.

Everything a plugin or an embedding application may use is exported here, every type a
public function or method returns included.

seqgen logs its warnings (plugin load failures, a run's warnings) with the standard
`logging` module, on the "seqgen" logger and its children, and installs no handler: see
seqgen/log.py. `LoadedModel.astream` generates for asyncio code without blocking the loop.
"""
__version__ = "0.1.0"

from .batch import Batch, Sampler, StateRule
from .cell import Cell, Stepper
from .components import KINDS, Component
from .attention import Attention, masked_softmax, weighted_sum
from .data import Dataset, PairSet, SequenceSet, Split, TokenStream
from .errors import (CheckpointError, DataError, GenerationError, PluginError, ScaffoldError,
                     SeqgenError, SpecError, TrainingError, UnknownComponentError)
from .hookspecs import hookimpl
from .strategy import GenerationWarning, Hypothesis, PlainChoice, Strategy
from .processors import History, LogitsProcessor
from .loggers import Logger
from . import options
from .text_io import read_text, read_text_chunks
from .seeding import dropout
from .paths import open_append
from .state import State, detach_state, map_state, select_batch
from .api import Session
from .runner import RunResult
from .registry import Preset
from .compare import CompareResult
from .events import Event, json_line
from .loaded import LoadedModel, Score
from .generate import Sample, Translation
from .attention_plot import write_attention_heatmap
from .train import Progress
from .plugins import LoadFailure
from .model import LanguageModel
from .seq2seq import Seq2Seq
from .compose import Composed, Origin
from .report import Report
from .inspection import Inspection, LayerTrace, write_inspection
from .token_cache import TokenCache
from .distributed import World
from .native import load_native
from .vocab import BOS, EOS, PAD, UNK, Vocab, smallest_int_dtype

__all__ = [
    "Batch", "Sampler", "StateRule", "Cell", "Stepper", "KINDS", "Component", "Dataset", "SequenceSet",
    "Split", "TokenStream", "CheckpointError", "DataError", "GenerationError", "PluginError",
    "ScaffoldError", "SeqgenError", "SpecError", "TrainingError", "UnknownComponentError", "hookimpl", "State",
    "detach_state", "map_state", "select_batch", "BOS", "EOS", "PAD", "UNK", "Vocab",
    "smallest_int_dtype", "__version__", "Strategy", "read_text", "Session", "load",
    "Event", "LoadedModel", "RunResult", "GenerationWarning", "Hypothesis", "CompareResult",
    "History", "LogitsProcessor", "dropout", "json_line", "Preset", "Logger", "options", "open_append",
    "Score", "Sample", "Progress", "LoadFailure", "LanguageModel", "Composed", "Origin", "Report",
    "Inspection", "LayerTrace", "write_inspection", "TokenCache", "read_text_chunks",
    "World", "Attention", "masked_softmax", "weighted_sum", "PairSet", "Seq2Seq", "Translation",
    "write_attention_heatmap", "load_native", "PlainChoice",
]


def load(path, **session_options) -> LoadedModel:
    """Load a trained model for generation: `seqgen.load("runs/x")` (its best checkpoint) or a .safetensors path.

    Builds a fresh Session (plugins from entry points unless entry_points=False) so the
    checkpoint's cell can be rebuilt; nothing is cached between calls.
    """
    return Session(**session_options).load(path)
