"""JSON Schemas of the cells' options (Draft 2020-12, without the "type" key the core adds).

Built from the public fragments in `seqgen.options`, which third-party cells reuse too.
Every property has a default and a description; the defaults are the keyword defaults of
`RecurrentCell.__init__` (tests/test_cells.py holds the two together).
"""
from __future__ import annotations

from seqgen import options

RNN_SCHEMA = options.options_schema(options.CELL_OPTIONS, nonlinearity=options.NONLINEARITY,
                                    title="Elman RNN cell options")
GRU_SCHEMA = options.options_schema(options.CELL_OPTIONS, title="GRU cell options")
LSTM_SCHEMA = options.options_schema(options.CELL_OPTIONS, title="LSTM cell options")
