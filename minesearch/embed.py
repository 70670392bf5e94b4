"""`minesearch embed`: an exported model over a Parquet file, streamed, into a Parquet file.

Batches are read with `ParquetFile.iter_batches`, so memory holds one batch whatever the file's
size. The output keeps every column of the input but the one embedded, plus ``embedding``
(fixed_size_list<float32>[E]). It is written to a temp file beside the target and renamed at the
end: a bad row found halfway leaves no half-written output. Every check names the file, the
column and the row.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from minesearch.export import ExportedModel, load_exported
from minesearch.inputs import RawInputs
from minesearch.parquet_checks import (
    _decoded,
    _first_true,
    _image_problem,
    _is_binary,
    _is_list,
    _is_string,
    _value_type,
)

__all__ = [
    "DEFAULT_INPUT_COLUMN",
    "EMBEDDING_COLUMN",
    "INPUT_TYPES",
    "EmbedError",
    "InputType",
    "embed_parquet",
]

InputType = Literal["auto", "vector", "image", "text"]
INPUT_TYPES: tuple[InputType, ...] = ("auto", "vector", "image", "text")
EMBEDDING_COLUMN = "embedding"
DEFAULT_INPUT_COLUMN = "features"  # the space file's default data.input_column
_KIND_OF_TYPE = {"vector": "tensor", "image": "image", "text": "text"}
_WHAT = {"tensor": "vectors", "image": "images", "text": "text"}


class EmbedError(ValueError):
    """Input that cannot be embedded; the message names the file, the column and the row."""


def embed_parquet(
    model_path: Path | str,
    data_path: Path | str,
    out_path: Path | str,
    input_column: str | None = None,
    batch_size: int = 256,
    input_type: str = "auto",
) -> int:
    """Embed `input_column` (default: the export's column, else ``features``) of every row of
    `data_path` into `out_path`; return the number of rows written."""
    if input_type not in INPUT_TYPES:
        raise EmbedError(f"unknown input type {input_type!r}; choose one of {INPUT_TYPES}")
    model = load_exported(model_path)
    data, out = Path(data_path), Path(out_path)
    column = input_column or model.settings.get("input_column") or DEFAULT_INPUT_COLUMN
    parquet = _open(data)
    schema = parquet.schema_arrow
    if column not in schema.names:
        raise EmbedError(f"{data} has no column {column!r}; its columns: {', '.join(schema.names)}")
    if EMBEDDING_COLUMN in schema.names and column != EMBEDDING_COLUMN:
        raise EmbedError(f"{data} already has a column {EMBEDDING_COLUMN!r}; it would be replaced")
    if out.resolve() == data.resolve():
        raise EmbedError(f"the output {out} is the input: write elsewhere")
    if batch_size < 1:
        raise EmbedError(f"batch size must be at least 1, got {batch_size}")
    mode = _mode(model, schema.field(column).type, input_type, f"{data}, column {column!r}")
    reader = _Rows(data, column, mode, model.settings.get("input_shape"))
    kept = pa.schema([f for f in schema if f.name != column])
    out_schema = kept.append(
        pa.field(EMBEDDING_COLUMN, pa.list_(pa.float32(), model.embedding_dim))
    )
    batches = parquet.iter_batches(batch_size=batch_size)
    return _write(out, out_schema, _embedded(model, reader, batches, kept))


def _open(data: Path) -> pq.ParquetFile:
    if not data.is_file():
        raise EmbedError(f"{data} does not exist" if not data.exists() else f"{data} is not a file")
    try:
        return pq.ParquetFile(data)
    except (pa.ArrowException, OSError) as err:
        raise EmbedError(f"{data} is not a Parquet file: {err}") from None


def _mode(model: ExportedModel, arrow_type: pa.DataType, input_type: str, where: str) -> str:
    """How the column becomes the model's raw inputs: vector, text, image_bytes or image_path."""
    kind = model.kind
    if input_type != "auto" and _KIND_OF_TYPE[input_type] != kind:
        raise EmbedError(f"the model embeds {_WHAT[kind]}, but the input type is {input_type}")
    t = _value_type(arrow_type)
    if kind == "tensor" and _is_list(t) and _numeric(t.value_type):
        return "vector"
    if kind == "text" and _is_string(t):
        return "text"
    if kind == "image" and _is_binary(t):
        return "image_bytes"
    if kind == "image" and _is_string(t):
        return "image_path"
    wanted = {
        "tensor": "a list of numbers per row",
        "text": "a string per row",
        "image": "encoded image bytes, or image paths relative to the file, per row",
    }[kind]
    raise EmbedError(
        f"{where} holds {arrow_type}, but the model embeds {_WHAT[kind]}: it needs {wanted} "
        "(choose the column with --input-column)"
    )


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


class _Rows:
    """One batch of the input column -> raw inputs, every row checked."""

    def __init__(self, data: Path, column: str, mode: str, shape: list[int] | None) -> None:
        self.data, self.column, self.mode = data, column, mode
        self.width = int(np.prod(shape)) if shape else None

    def where(self, row: int) -> str:
        return f"{self.data}, column {self.column!r}, row {row}"

    def raw(self, arr: pa.Array, start: int) -> RawInputs:
        """`arr`: rows start.. of the file."""
        arr = _decoded(arr)
        if arr.null_count:
            raise EmbedError(f"{self.where(start + _first_true(arr.is_null()))} is null")
        if self.mode == "vector":
            return self._vectors(arr, start)
        if self.mode == "text":
            return self._texts(arr, start)
        if self.mode == "image_bytes":
            return self._images(arr.to_pylist(), start)
        return self._images(
            [self._read(i + start, p) for i, p in enumerate(arr.to_pylist())], start
        )

    def _vectors(self, arr: pa.Array, start: int) -> np.ndarray:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)  # [B]
        bad = lengths != self.width
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EmbedError(
                f"{self.where(start + i)} has {lengths[i]} values; the model takes {self.width}"
            )
        values = arr.flatten()  # [B * D]
        if values.null_count:
            i = pc.list_parent_indices(arr)[_first_true(values.is_null())].as_py()
            raise EmbedError(f"{self.where(start + i)} contains a null value")
        vectors = values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(arr), -1)
        finite = np.isfinite(vectors).all(axis=1)
        if not finite.all():
            raise EmbedError(
                f"{self.where(start + int(np.flatnonzero(~finite)[0]))} has a NaN or infinity"
            )
        return vectors

    def _texts(self, arr: pa.Array, start: int) -> list[str]:
        empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(arr.cast(pa.large_string()))), 0)
        if pc.any(empty).as_py():
            raise EmbedError(f"{self.where(start + _first_true(empty))} is empty text")
        return [str(s) for s in arr.to_pylist()]

    def _read(self, row: int, rel: str) -> bytes:
        """An image path, relative to the Parquet file's directory (the data set moves as one)."""
        path = Path(posixpath.normpath(posixpath.join(self.data.parent.as_posix(), rel)))
        if not rel.strip():
            raise EmbedError(f"{self.where(row)} is an empty image path")
        try:
            return path.read_bytes()
        except OSError as err:
            raise EmbedError(f"{self.where(row)}: cannot read image {rel!r} ({err})") from None

    def _images(self, images: list[bytes], start: int) -> list[bytes]:
        for i, data in enumerate(images):
            problem = _image_problem(data)
            if problem:
                raise EmbedError(
                    f"{self.where(start + i)}: not an image Pillow can read ({problem})"
                )
        return images


def _embedded(
    model: ExportedModel, reader: _Rows, batches: Iterator[pa.RecordBatch], kept: pa.Schema
) -> Iterator[pa.Table]:
    """Each input batch as an output table: the kept columns and their embeddings."""
    start = 0
    for batch in batches:
        raw = reader.raw(batch.column(reader.column), start)
        try:
            vectors = model(raw)  # [B, E]
        except ValueError as err:  # an image Pillow identified but could not decode, ...
            where = reader.where(start)
            raise EmbedError(f"{where} to {start + batch.num_rows - 1}: {err}") from None
        flat = pa.array(vectors.reshape(-1), pa.float32())
        embedding = pa.FixedSizeListArray.from_arrays(flat, model.embedding_dim)
        columns = [batch.column(name) for name in kept.names]
        yield pa.Table.from_arrays(
            [*columns, embedding], schema=kept.append(pa.field(EMBEDDING_COLUMN, embedding.type))
        )
        start += batch.num_rows


def _write(out: Path, schema: pa.Schema, tables: Iterator[pa.Table]) -> int:
    """Tables into a temp file beside `out`, renamed to it once all are written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    rows = 0
    try:
        with pq.ParquetWriter(name, schema) as writer:
            for table in tables:
                writer.write_table(table)
                rows += table.num_rows
        os.replace(name, out)
    finally:
        if os.path.exists(name):
            os.unlink(name)
    return rows
