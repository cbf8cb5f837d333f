"""seqgen: train recurrent language models and generate text with them.

Everything a plugin or an embedding application may use is exported here.
"""
from .batch import Batch, Sampler, StateRule
from .cell import Cell
from .components import KINDS, Component
from .data import Dataset, SequenceSet, Split, TokenStream
from .errors import (CheckpointError, DataError, GenerationError, PluginError, SeqgenError,
                     SpecError, TrainingError, UnknownComponentError)
from .hookspecs import hookimpl
from .state import State, detach_state, map_state, select_batch
from .vocab import BOS, EOS, PAD, UNK, Vocab, smallest_int_dtype

__version__ = "0.1.0"

__all__ = [
    "Batch", "Sampler", "StateRule", "Cell", "KINDS", "Component", "Dataset", "SequenceSet",
    "Split", "TokenStream", "CheckpointError", "DataError", "GenerationError", "PluginError",
    "SeqgenError", "SpecError", "TrainingError", "UnknownComponentError", "hookimpl", "State",
    "detach_state", "map_state", "select_batch", "BOS", "EOS", "PAD", "UNK", "Vocab",
    "smallest_int_dtype", "__version__",
]
