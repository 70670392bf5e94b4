"""The data a space names, opened and split the same way wherever a model is trained, scored or
exported, and checked against the space before any compute (`data_errors`).

Sources keep only labels in memory; rows are fetched batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from minesearch.config import SpaceSpec, backbone_errors, resolved_backbone, trainable_errors
from minesearch.config.vocab import SplitPart
from minesearch.data._contracts import Source
from minesearch.data._errors import DataError
from minesearch.data._split import Split, split_by_class, split_by_column, split_folds

# The shipped text set: its file in minesearch/assets, its label column and its text column.
TEXT_TOPICS = ("text_topics.parquet", "label", "text")


def open_source(spec: SpaceSpec, scan: bool = False) -> Source:
    """The data set the space names. `scan` checks every row (the driver does it once, before a
    search starts; workers then skip it)."""
    from minesearch.data.sources import ParquetSource

    d = spec.data
    if d.source == "digits":
        from minesearch.data.sources import load_digits_dataset

        return load_digits_dataset()
    if d.source == "image_folder":
        from minesearch.data.sources import ImageFolderSource

        assert d.path is not None  # the space's checks require it
        return ImageFolderSource.open(d.path, scan=scan)
    if d.source == "text_topics":
        name, label, text = TEXT_TOPICS
        path = str(resources.files("minesearch") / "assets" / name)
        return ParquetSource.open(path, label, text, "text", cache_dir=d.cache_dir, scan=scan)
    assert d.path is not None
    return ParquetSource.open(
        d.path, d.label_column, d.input_column, d.input_type, d.split_column, d.cache_dir, scan
    )


@dataclass(frozen=True, eq=False)
class Parts:
    """A source and its split: row positions per part, labels at hand."""

    source: Source
    split: Split

    def rows(self, part: SplitPart) -> np.ndarray:
        rows: np.ndarray = getattr(self.split, part)
        return rows

    def labels(self, part: SplitPart) -> np.ndarray:
        return self.source.labels[self.rows(part)]


def load_parts(spec: SpaceSpec, scan: bool = False, fold: int = 0, folds: int = 1) -> Parts:
    """The space's data and its split; with `folds` K > 1, fold `fold` of `split_folds` (its
    class-disjoint folds over the non-test classes). K = 1 is the space's one split."""
    if not 0 <= fold < max(folds, 1):
        raise ValueError(f"fold {fold} of {folds}: a fold is numbered 0 to folds - 1")
    source = open_source(spec, scan)
    if spec.data.split_column is not None and source.splits is not None:
        if folds > 1:
            raise DataError(
                "search.folds",
                f"{folds} class folds need a class split, but data.split_column gives the data's "
                "own split: use 1 fold, or drop data.split_column",
            )
        return Parts(source, split_by_column(source.splits, source.labels))
    s = spec.data.split
    if folds == 1:
        return Parts(source, split_by_class(source.labels, s.val, s.test, s.seed))
    return Parts(source, split_folds(source.labels, s.val, s.test, s.seed, folds)[fold])


def data_errors(spec: SpaceSpec) -> list[str]:
    """Read the data once in the driver, every row checked (scan), so bad columns, rows or splits
    fail here and not in a trial; a Parquet source leaves its checked cache for the workers."""
    try:
        parts = load_parts(spec, scan=True)
    except DataError as exc:
        return [str(exc)]
    source = parts.source
    if problems := backbone_errors(spec, source.kind):
        return problems
    backbone = resolved_backbone(spec, source.kind, source.input_shape)
    if problems := trainable_errors(spec, backbone):
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
