"""Built-in cells: RNN, GRU and LSTM, each fused (torch's modules) and from scratch.

The two forms of a family share option schemas (but `layer_norm`, scratch only) and
state-dict keys, so a checkpoint trained with "lstm" loads into "lstm-scratch" and back.
"""
from seqgen import hookimpl

from .fused import FusedGRU, FusedLSTM, FusedRNN
from .options import (GRU_SCHEMA, GRU_SCRATCH_SCHEMA, LSTM_SCHEMA, LSTM_SCRATCH_SCHEMA,
                      RNN_SCHEMA)
from .scratch_gru import ScratchGRU
from .scratch_lstm import ScratchLSTM
from .scratch_rnn import ScratchRNN


@hookimpl
def register_cells(register):
    register("rnn", FusedRNN, schema=RNN_SCHEMA, description="Elman RNN, torch-fused (nn.RNN)")
    register("gru", FusedGRU, schema=GRU_SCHEMA, description="GRU, torch-fused (nn.GRU)")
    register("lstm", FusedLSTM, schema=LSTM_SCHEMA, description="LSTM, torch-fused (nn.LSTM)")
    register("rnn-scratch", ScratchRNN, schema=RNN_SCHEMA,
             description="Elman RNN written out step by step (same weights as 'rnn')")
    register("gru-scratch", ScratchGRU, schema=GRU_SCRATCH_SCHEMA,
             description="GRU written out step by step (same weights as 'gru')")
    register("lstm-scratch", ScratchLSTM, schema=LSTM_SCRATCH_SCHEMA,
             description="LSTM written out step by step (same weights as 'lstm')")
