"""data: the labelled data a space names, split by class, fetched batch by batch.

A *source* keeps labels (and an optional per-row split) in memory and hands over raw inputs by row
(`sources/`); a *preprocess* turns one batch of raw inputs into what a backbone takes
(`preprocess/`). `load_parts` opens the space's source and splits it (class-disjoint unless the
data names its own split; fold k of `split_folds`' K class-disjoint folds over the non-test classes
when asked); `data_errors` checks the data against the space before any compute; `summarize` is
what MLflow shows as the runs' datasets (source, digest, rows per class and part).

Runs in the CLI and the driver (validation, every row scanned once), in the Ray Train workers and
scoring tasks (batches), and in `minesearch export`/`embed`. Imports `config`; this package's own
modules need no torch (only `preprocess/` does), so validating a space does not load it.
"""

from minesearch.data._contracts import ModelInput, Preprocess, RawInputs, Source
from minesearch.data._errors import DataError
from minesearch.data._open import TEXT_TOPICS, Parts, data_errors, load_parts, open_source
from minesearch.data._split import Split, split_by_class, split_by_column, split_folds
from minesearch.data._summary import DataSummary, PartSummary, summarize

__all__ = [
    "TEXT_TOPICS",
    "DataError",
    "DataSummary",
    "ModelInput",
    "PartSummary",
    "Parts",
    "Preprocess",
    "RawInputs",
    "Source",
    "Split",
    "data_errors",
    "load_parts",
    "open_source",
    "split_by_class",
    "split_by_column",
    "split_folds",
    "summarize",
]
