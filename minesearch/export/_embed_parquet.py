"""`minesearch embed`: an exported model over a Parquet file, streamed, into a Parquet file.

Batches are read with `ParquetFile.iter_batches`, so memory holds one batch whatever the file's
size. The output keeps every column of the input but the one embedded, plus ``embedding``
(fixed_size_list<float32>[E]). It is written to a temp file beside the target and renamed at the
end: a bad row found halfway leaves no half-written output. Every check names the file, the
column and the row.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from minesearch.config.vocab import INPUT_TYPES, KIND_OF_INPUT_TYPE, InputType
from minesearch.data import RawInputs, rows
from minesearch.export._formats import ExportedModel, load_exported

__all__ = [
    "DEFAULT_INPUT_COLUMN",
    "EMBEDDING_COLUMN",
    "INPUT_TYPES",
    "EmbedError",
    "InputType",
    "embed_parquet",
]

EMBEDDING_COLUMN = "embedding"
DEFAULT_INPUT_COLUMN = "features"  # the space file's default data.input_column
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
    wanted_kind = KIND_OF_INPUT_TYPE.get(input_type)  # type: ignore[call-overload]
    if wanted_kind is not None and wanted_kind != kind:
        raise EmbedError(f"the model embeds {_WHAT[kind]}, but the input type is {input_type}")
    t = rows.value_type(arrow_type)
    if kind == "tensor" and rows.is_list(t) and rows.is_number(t.value_type):
        return "vector"
    if kind == "text" and rows.is_string(t):
        return "text"
    if kind == "image" and rows.is_binary(t):
        return "image_bytes"
    if kind == "image" and rows.is_string(t):
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


class _Rows:
    """One batch of the input column -> raw inputs, every row checked (`minesearch.data`'s rules,
    the ones training data passed)."""

    def __init__(self, data: Path, column: str, mode: str, shape: list[int] | None) -> None:
        self.data, self.column, self.mode = data, column, mode
        self.width = int(np.prod(shape)) if shape else 0

    def where(self, row: int) -> str:
        return f"{self.data}, column {self.column!r}, row {row}"

    def raw(self, arr: pa.Array, start: int) -> RawInputs:
        """`arr`: rows start.. of the file."""
        try:
            return self._raw(rows.decoded(arr))
        except rows.RowProblem as p:
            raise EmbedError(p.at(self.where(start + p.row))) from None

    def _raw(self, arr: pa.Array) -> RawInputs:
        rows.check_no_nulls(arr)
        if self.mode == "vector":
            rule = f"the model takes {self.width}"
            values = rows.vector_values(arr, self.width, rule)
            flat = np.array(values.to_numpy(zero_copy_only=False))  # writable: torch wants it
            return flat.reshape(len(arr), self.width)
        if self.mode == "text":
            return [str(s) for s in rows.check_texts(arr).to_pylist()]
        if self.mode == "image_bytes":
            images: list[bytes] = arr.to_pylist()
        else:
            paths = rows.image_paths(arr.to_pylist(), self.data.parent.as_posix())
            images = [self._read(i, p) for i, p in enumerate(paths)]
        rows.check_images(images)
        return images

    def _read(self, row: int, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as err:
            raise rows.RowProblem(row, f": cannot read image {path!r} ({err})") from None


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
