"""Everything checked before compute: the file (spec), then the data it names.

`minesearch validate` and `minesearch run` share this, so a search never starts on input that
`validate` would reject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minesearch.data import DataError, load_dataset, split_by_class
from minesearch.spec import SpaceSpec, SpecError, load_spec


def data_errors(spec: SpaceSpec) -> list[str]:
    """Load the data once in the driver, so bad columns or splits fail here and not in a trial."""
    d = spec.data
    try:
        data = load_dataset(d.source, d.path, d.label_column, d.features_column)
        split = split_by_class(data.labels, d.split.val, d.split.test, d.split.seed)
    except DataError as exc:
        return [str(exc)]
    train_classes = len(np.unique(data.labels[split.train]))
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
