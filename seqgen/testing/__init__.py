"""Contract checks for plugin authors: hold a third-party component to the built-ins' tests.

    from seqgen.testing import check_cell, check_dataset, check_sampler, check_strategy

    def test_my_cell():
        check_cell(MyCell, input_size=5, options={"hidden_size": 8})

    def test_my_strategy():
        check_strategy(MyStrategy, options={"k": 5})

One kit per kind: `check_cell`, `check_dataset`, `check_sampler`, `check_strategy`,
`check_attention`. Each check raises AssertionError naming the property that failed.
`seqgen plugins new KIND NAME` scaffolds a plugin package whose tests already call the
right one.
"""
from .attention import check_attention
from .cells import check_cell
from .datasets import check_dataset
from .samplers import check_sampler
from .strategies import check_strategy

__all__ = ["check_attention", "check_cell", "check_dataset", "check_sampler",
           "check_strategy"]
