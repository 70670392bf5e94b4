"""pytorch-metric-learning's module global that minesearch cannot do without, in one place
(checked on pytorch-metric-learning 2.9.0).

`collect_stats`: PML's losses, miners, reducers and distances record their statistics (a
reducer's `num_past_filter`, which the mining telemetry reads) only when built with
`collect_stats=True`, and a loss builds its default reducer and distance itself, taking the
default from the module global `pytorch_metric_learning.utils.common_functions.COLLECT_STATS`.
Setting that global, in the Ray Train worker before the loss and miner are built, is the only way
to reach those inner modules without naming each loss's default reducer.

Re-check on a PML upgrade: run tests/train/test_pml_internals.py, and read
`ModuleWithRecords.__init__` in pytorch_metric_learning/utils/module_with_records.py.
"""

from __future__ import annotations

from pytorch_metric_learning.utils import common_functions as _pml_common


def collect_stats(on: bool) -> None:
    """Whether the PML modules built from now on in this process record their statistics."""
    _pml_common.COLLECT_STATS = on
