"""Everything checked before compute: the file (spec), then the data it names.

`minesearch validate` and `minesearch run` share this, so a search never starts on input that
`validate` would reject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minesearch.data import DataError
from minesearch.pipeline import load_parts
from minesearch.spec import SpaceSpec, SpecError, load_spec
from minesearch.spec_data import backbone_errors


def data_errors(spec: SpaceSpec) -> list[str]:
    """Read the data once in the driver, every row checked (scan), so bad columns, rows or splits
    fail here and not in a trial; a Parquet source leaves its checked cache for the workers."""
    try:
        parts = load_parts(spec, scan=True)
    except DataError as exc:
        return [str(exc)]
    if problems := backbone_errors(spec, parts.source.kind):
        return problems
    if spec.data.split_column is not None and parts.source.splits is None:
        return [f"data.split_column: source {spec.data.source!r} has no split column"]
    train_classes = len(np.unique(parts.labels("train")))
    if spec.train.batch.classes > train_classes:
        return [
            f"train.batch.classes: {spec.train.batch.classes} classes per batch, but the training "
            f"split has only {train_classes} classes (data.split.val/test take the others)"
        ]
    return []


def validated(path: str | Path) -> SpaceSpec:
    """The spec of a space file whose data has been checked too; SpecError lists every problem."""
    spec = load_spec(path)
    problems = data_errors(spec)
    if problems:
        raise SpecError(str(path), problems)
    return spec
