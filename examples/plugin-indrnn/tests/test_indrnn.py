"""The plugin holds its cell to seqgen's cell contract, like the built-ins."""
import pytest
from seqgen.testing import check_cell

from seqgen_indrnn import IndRNN


@pytest.mark.parametrize("options", [{"hidden_size": 6}, {"hidden_size": 4, "num_layers": 2}])
def test_indrnn_meets_the_cell_contract(options):
    check_cell(IndRNN, input_size=5, options=options)
