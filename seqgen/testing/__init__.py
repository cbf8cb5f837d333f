"""Contract checks for plugin authors: hold a third-party component to the built-ins' tests.

    from seqgen.testing import check_cell, check_sampler

    def test_my_cell():
        check_cell(MyCell, input_size=5, options={"hidden_size": 8})

Each check raises AssertionError naming the property that failed.
"""
from .cells import check_cell
from .samplers import check_sampler

__all__ = ["check_cell", "check_sampler"]
