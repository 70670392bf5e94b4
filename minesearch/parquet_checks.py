"""The checks a Parquet scan makes on each row, and the messages that name the bad row.

Separate from `parquet_source` because they are a concept of their own: what a valid label, split,
vector, text or image is, and how to say which row of which file is not. `parquet_source` decides
which files and columns to read and how to cache and serve them; it hands each streamed batch to
`_Writer`, which checks it and converts it to the cache's type. Keeping the rules here lets them
grow (a new input kind, a new check) without the cache and filesystem code around them.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from minesearch.data import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
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


def _first_true(mask: pa.Array) -> int:
    return int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _is_binary(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t))


def _decoded(arr: pa.Array) -> pa.Array:
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def _check_no_nulls(arr: pa.Array, f: _File, column: str, offset: int, field: str) -> None:
    if arr.null_count:
        raise DataError(field, f"{_at(f, column, _first_true(arr.is_null()), offset)} is null")


def _read_labels(chunks: list[_Chunk], column: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """int or string labels of every file → int64 [N]; strings index their sorted unique names.
    Files must agree on ints vs strings, or the same class could get two ids."""
    field = "data.label_column"
    kinds: list[str] = []
    for f, arr, offset in chunks:
        _check_no_nulls(arr, f, column, offset, field)
        kind = "int" if pa.types.is_integer(arr.type) else "str" if _is_string(arr.type) else None
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
        ok = pc.is_in(arr.cast(pa.large_string()), value_set=pa.array(SPLITS))
        if not pc.all(ok).as_py():
            row = _first_true(pc.invert(ok.fill_null(False)))
            raise DataError(
                "data.split_column",
                f"{_at(f, column, row, offset)}: split {arr[row].as_py()!r} "
                f"is not one of {', '.join(SPLITS)}",
            )
        codes.append(pc.index_in(arr.cast(pa.large_string()), pa.array(SPLITS)).to_numpy())
    return np.asarray(SPLITS)[np.concatenate(codes)]


class _Writer:
    """Turns one file's input batches into cache batches, checking them on the way through."""

    def __init__(self, fs: pafs.FileSystem, mode: _Mode, column: str, scan: bool) -> None:
        self.fs, self.mode, self.column, self.scan = fs, mode, column, scan
        self.width: int | None = None  # vector length D, fixed by the first row seen

    def convert(self, arr: pa.Array, f: _File, start: int, offset: int) -> pa.Array:
        """`arr`: rows start.. of file `f`; `offset`: the global row of the file's row 0."""
        arr = _decoded(arr)
        if arr.null_count:
            row = start + _first_true(arr.is_null())
            raise DataError("data.input_column", f"{_at(f, self.column, row, offset)} is null")

        def where(i: int) -> str:
            return _at(f, self.column, start + i, offset)

        if self.mode == "vector":
            return self._vectors(arr, where)
        if self.mode == "text":
            return self._texts(arr, where)
        if self.mode == "image_bytes":
            return self._images(arr, where)
        return self._paths(arr, f, where)

    def _vectors(self, arr: pa.Array, where: Callable[[int], str]) -> pa.Array:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)  # [B]
        if self.width is None:
            self.width = int(lengths[0])
            if self.width == 0:
                raise DataError("data.input_column", f"{where(0)}: the vector is empty")
        bad = lengths != self.width
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                "data.input_column",
                f"{where(i)} has {lengths[i]} values; vectors must all have the same length, "
                f"and the first one has {self.width}",
            )
        values = arr.flatten()  # [B * D]
        if values.null_count:
            i = pc.list_parent_indices(arr)[_first_true(values.is_null())].as_py()
            raise DataError("data.input_column", f"{where(i)} contains a null value")
        values = values.cast(pa.float32(), safe=False)
        if self.scan:
            finite = np.isfinite(values.to_numpy().reshape(-1, self.width)).all(axis=1)
            if not finite.all():
                i = int(np.flatnonzero(~finite)[0])
                raise DataError("data.input_column", f"{where(i)} has a NaN or infinity")
        return pa.FixedSizeListArray.from_arrays(values, self.width)

    def _texts(self, arr: pa.Array, where: Callable[[int], str]) -> pa.Array:
        arr = arr.cast(pa.large_string())
        if self.scan:
            empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0)
            if pc.any(empty).as_py():
                raise DataError("data.input_column", f"{where(_first_true(empty))} is empty text")
        return arr

    def _images(self, arr: pa.Array, where: Callable[[int], str]) -> pa.Array:
        arr = arr.cast(pa.large_binary())
        if self.scan:
            for i, value in enumerate(arr):
                problem = _image_problem(value.as_py())
                if problem:
                    raise DataError(
                        "data.input_column", f"{where(i)}: not an image Pillow can read ({problem})"
                    )
        return arr

    def _paths(self, arr: pa.Array, f: _File, where: Callable[[int], str]) -> pa.Array:
        """Paths are relative to their Parquet file's directory, so a data set moves as one tree."""
        base = posixpath.dirname(f.path)
        rel = arr.to_pylist()
        for i, p in enumerate(rel):
            if not p.strip():
                raise DataError("data.input_column", f"{where(i)} is an empty image path")
        paths = [posixpath.normpath(posixpath.join(base, p)) for p in rel]
        if self.scan:
            for i, info in enumerate(self.fs.get_file_info(paths)):
                if info.type != pafs.FileType.File:
                    raise DataError(
                        "data.input_column",
                        f"{where(i)}: image file {rel[i]!r} does not exist "
                        f"(looked for {info.path})",
                    )
        return pa.array(paths, pa.large_string())


def _image_problem(data: bytes) -> str | None:
    """Why Pillow cannot identify `data`, or None. verify() reads headers only: cheap per row."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except Exception as err:  # Pillow's decoders raise many types on a corrupt file
        return f"{type(err).__name__}: {err}"
    return None
