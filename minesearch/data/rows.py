"""What a valid input row is, checked on Arrow batches: one set of rules for every reader.

A Parquet source (training data) and `minesearch embed` (data to embed) read the same kinds of
column, so they share these checks. A check raises `RowProblem` with the row's index in the batch
and what is wrong with it; the caller knows the file, the column and the row offset, and turns it
into its own error (`DataError` naming the space-file field, or embed's error).
"""

from __future__ import annotations

import io
import posixpath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class RowProblem(ValueError):
    """Row `row` of a batch (0-based) is invalid; `message` says why, without saying where."""

    def __init__(self, row: int, message: str) -> None:
        super().__init__(f"row {row} {message}")
        self.row = row
        self.message = message  # "is null", "has 3 values; ...", ": image file ... does not exist"

    def __reduce__(self) -> tuple[type[RowProblem], tuple[int, str]]:
        return type(self), (self.row, self.message)

    def at(self, where: str) -> str:
        """The message for a reader that knows where the row is (file, column, row)."""
        return (
            f"{where}{self.message}" if self.message.startswith(":") else f"{where} {self.message}"
        )


def first_true(mask: pa.Array) -> int:
    return int(np.flatnonzero(mask.to_numpy(zero_copy_only=False))[0])


def value_type(t: pa.DataType) -> pa.DataType:
    """A dictionary column's value type; any other type as it is."""
    return t.value_type if pa.types.is_dictionary(t) else t


def is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def is_binary(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t))


def is_number(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def decoded(arr: pa.Array) -> pa.Array:
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def check_no_nulls(arr: pa.Array) -> None:
    if arr.null_count:
        raise RowProblem(first_true(arr.is_null()), "is null")


def vector_values(arr: pa.Array, width: int, width_rule: str, finite: bool = True) -> pa.Array:
    """The float32 values [B * width] of a list column whose rows must all have `width` numbers.

    `width_rule` completes "has N values; ..." (why `width` is the right length); `finite`
    rejects NaN and infinity (a scan checks them once, the per-batch reads after it do not).
    """
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)  # [B]
    bad = lengths != width
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RowProblem(i, f"has {lengths[i]} values; {width_rule}")
    values = arr.flatten()  # [B * D]
    if values.null_count:
        raise RowProblem(
            pc.list_parent_indices(arr)[first_true(values.is_null())].as_py(),
            "contains a null value",
        )
    values = values.cast(pa.float32(), safe=False)
    if finite:
        ok = np.isfinite(values.to_numpy().reshape(-1, width)).all(axis=1)
        if not ok.all():
            raise RowProblem(int(np.flatnonzero(~ok)[0]), "has a NaN or infinity")
    return values


def check_texts(arr: pa.Array) -> pa.Array:
    """The column as large strings, none of them empty (or blank)."""
    arr = arr.cast(pa.large_string())
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0)
    if pc.any(empty).as_py():
        raise RowProblem(first_true(empty), "is empty text")
    return arr


def check_images(images: list[bytes]) -> None:
    """Every item is a file Pillow can identify (headers only: cheap per row)."""
    for i, data in enumerate(images):
        if (problem := image_problem(data)) is not None:
            raise RowProblem(i, f"is not an image Pillow can read ({problem})")


def image_problem(data: bytes) -> str | None:
    """Why Pillow cannot identify `data`, or None. verify() reads headers only."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except Exception as err:  # Pillow's decoders raise many types on a corrupt file
        return f"{type(err).__name__}: {err}"
    return None


def image_paths(relative: list[str], base: str) -> list[str]:
    """Image paths relative to `base` (the Parquet file's directory: a data set moves as one
    tree), made absolute; an empty path is an error."""
    for i, path in enumerate(relative):
        if not path.strip():
            raise RowProblem(i, "is an empty image path")
    return [posixpath.normpath(posixpath.join(base, p)) for p in relative]
