"""Reading a Parquet data set's labels and splits, and checking its input column row by row.

Separate from `_parquet` because it is a concept of its own: what a valid label and split are, and
which row of which file is not. `_parquet` decides which files and columns to read and how to cache
and serve them; it hands each streamed batch to `_Writer`, which checks it (`minesearch.data.rows`
holds the rules shared with `minesearch embed`) and converts it to the cache's type.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from minesearch.config.vocab import SPLIT_PARTS
from minesearch.data import rows
from minesearch.data._errors import DataError

_Mode = Literal["vector", "image_bytes", "image_path", "text"]


@dataclass(frozen=True)
class _File:
    """One Parquet file: its path in the filesystem, how messages name it, and its identity."""

    path: str
    display: str
    size: int
    mtime_ns: int | None


_Chunk = tuple[_File, pa.Array, int]  # a file, one of its columns, the global row of its row 0


def _at(f: _File, column: str, row: int, offset: int) -> str:
    """Where a problem is: the file, the column, the row in that file and in the whole data set."""
    return f"{f.display}, column {column!r}, row {row} (global row {offset + row})"


def _check_no_nulls(arr: pa.Array, f: _File, column: str, offset: int, field: str) -> None:
    try:
        rows.check_no_nulls(arr)
    except rows.RowProblem as p:
        raise DataError(field, p.at(_at(f, column, p.row, offset))) from None


def _read_labels(chunks: list[_Chunk], column: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """int or string labels of every file → int64 [N]; strings index their sorted unique names.
    Files must agree on ints vs strings, or the same class could get two ids."""
    field = "data.label_column"
    kinds: list[str] = []
    for f, arr, offset in chunks:
        _check_no_nulls(arr, f, column, offset, field)
        kind = (
            "int" if pa.types.is_integer(arr.type) else "str" if rows.is_string(arr.type) else None
        )
        if kind is None:
            raise DataError(
                field,
                f"{f.display}, column {column!r}: labels must be integers or strings, "
                f"found type {arr.type}",
            )
        if kinds and kind != kinds[0]:
            raise DataError(
                field,
                f"{f.display}, column {column!r}: labels are {kind} here but "
                f"{kinds[0]} in {chunks[0][0].display}",
            )
        kinds.append(kind)
    if kinds[0] == "int":
        return np.concatenate([a.to_numpy(zero_copy_only=False) for _, a, _ in chunks]).astype(
            np.int64
        ), None
    strings = pa.chunked_array([a.cast(pa.large_string()) for _, a, _ in chunks])
    names = pc.unique(strings).sort()  # bytewise UTF-8 order = Python's str order
    labels = pc.index_in(strings, value_set=names).to_numpy().astype(np.int64)
    return labels, tuple(names.to_pylist())


def _read_splits(chunks: list[_Chunk], column: str) -> np.ndarray:
    """Each row's split, all of them among train/val/test: a typo would silently drop rows."""
    codes = []
    for f, arr, offset in chunks:
        ok = pc.is_in(arr.cast(pa.large_string()), value_set=pa.array(SPLIT_PARTS))
        if not pc.all(ok).as_py():
            row = rows.first_true(pc.invert(ok.fill_null(False)))
            raise DataError(
                "data.split_column",
                f"{_at(f, column, row, offset)}: split {arr[row].as_py()!r} "
                f"is not one of {', '.join(SPLIT_PARTS)}",
            )
        codes.append(pc.index_in(arr.cast(pa.large_string()), pa.array(SPLIT_PARTS)).to_numpy())
    return np.asarray(SPLIT_PARTS)[np.concatenate(codes)]


class _Writer:
    """Turns one file's input batches into cache batches, checking them on the way through."""

    def __init__(self, fs: pafs.FileSystem, mode: _Mode, column: str, scan: bool) -> None:
        self.fs, self.mode, self.column, self.scan = fs, mode, column, scan
        self.width: int | None = None  # vector length D, fixed by the first row seen

    def convert(self, arr: pa.Array, f: _File, start: int, offset: int) -> pa.Array:
        """`arr`: rows start.. of file `f`; `offset`: the global row of the file's row 0."""
        try:
            return self._convert(rows.decoded(arr), f)
        except rows.RowProblem as p:
            where = _at(f, self.column, start + p.row, offset)
            raise DataError("data.input_column", p.at(where)) from None

    def _convert(self, arr: pa.Array, f: _File) -> pa.Array:
        rows.check_no_nulls(arr)
        if self.mode == "vector":
            return self._vectors(arr)
        if self.mode == "text":
            return rows.check_texts(arr) if self.scan else arr.cast(pa.large_string())
        if self.mode == "image_bytes":
            arr = arr.cast(pa.large_binary())
            if self.scan:
                rows.check_images(arr.to_pylist())
            return arr
        return self._paths(arr, f)

    def _vectors(self, arr: pa.Array) -> pa.Array:
        if self.width is None:
            self.width = int(pc.list_value_length(arr[:1]).to_numpy(zero_copy_only=False)[0])
            if self.width == 0:
                raise rows.RowProblem(0, "is an empty vector")
        rule = f"vectors must all have the same length, and the first one has {self.width}"
        values = rows.vector_values(arr, self.width, rule, finite=self.scan)
        return pa.FixedSizeListArray.from_arrays(values, self.width)

    def _paths(self, arr: pa.Array, f: _File) -> pa.Array:
        """Paths are relative to their Parquet file's directory, so a data set moves as one tree."""
        relative = arr.to_pylist()
        paths = rows.image_paths(relative, posixpath.dirname(f.path))
        if self.scan:
            for i, info in enumerate(self.fs.get_file_info(paths)):
                if info.type != pafs.FileType.File:
                    raise rows.RowProblem(
                        i, f": image file {relative[i]!r} does not exist (looked for {info.path})"
                    )
        return pa.array(paths, pa.large_string())
