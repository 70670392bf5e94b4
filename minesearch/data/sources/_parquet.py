"""A Parquet data set larger than a worker's memory, read lazily through a local Arrow cache.

Parquet is compressed and pyarrow writes row groups of up to 1M rows, so fetching 64 random rows
straight from it would decode whole column chunks for every batch. Instead the input column is
streamed once, 1024 rows at a time, into an uncompressed Arrow IPC file on local disk. That file is
memory-mapped: a batch costs a few page reads, and the pages belong to the OS page cache (shared by
the workers of a node, evictable under pressure), not to a worker's anonymous memory. The same pass
validates every row, so a bad row fails `open`, not trial 17 at epoch 3. Labels and splits are
small and read eagerly, column by column.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import posixpath
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from minesearch.config import is_uri
from minesearch.config.vocab import INPUT_TYPES, KIND_OF_INPUT_TYPE, InputKind, InputType
from minesearch.data import rows
from minesearch.data._errors import DataError
from minesearch.data.sources._parquet_rows import (
    _Chunk,
    _File,
    _Mode,
    _read_labels,
    _read_splits,
    _Writer,
)

if TYPE_CHECKING:
    from minesearch.data._contracts import RawInputs

__all__ = ["ParquetSource", "default_cache_dir"]

_KIND: dict[_Mode, InputKind] = {
    "vector": KIND_OF_INPUT_TYPE["vector"],
    "image_bytes": KIND_OF_INPUT_TYPE["image"],
    "image_path": KIND_OF_INPUT_TYPE["image"],
    "text": KIND_OF_INPUT_TYPE["text"],
}
_BATCH_ROWS = 1024  # rows per cache record batch: small enough to stream, large enough to be cheap
# Without pre_buffer=False and a read buffer, pyarrow reads a whole column chunk (the column of one
# row group, up to 1M rows) into memory at once; with them it streams page by page.
_READ_BUFFER = 8 << 20
_CACHE_VERSION = 1  # bump when the cache layout changes, so old files are not reused
_SCANNED = b"minesearch.scanned"


def default_cache_dir() -> str:
    """`$MINESEARCH_CACHE_DIR`, else ~/.cache/minesearch/arrow: node-local, outlives one search."""
    env = os.environ.get("MINESEARCH_CACHE_DIR")
    return env or os.path.join(os.path.expanduser("~"), ".cache", "minesearch", "arrow")


@dataclass(frozen=True)
class _Columns:
    label: str
    input: str
    split: str | None


def _locate(path: str) -> tuple[pafs.FileSystem, list[_File]]:
    """The filesystem and the Parquet files of `path` (a file, or every *.parquet below a dir)."""
    uri = is_uri(path)
    try:
        fs, root = pafs.FileSystem.from_uri(path) if uri else (pafs.LocalFileSystem(), path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError("data.path", f"{path}: not a usable path or URI ({err})") from err
    if not uri:
        root = os.path.abspath(root)
    prefix = path.split("://", 1)[0] + "://" if uri else ""
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise DataError("data.path", f"{path}: no such file or directory")
    if info.type == pafs.FileType.Directory:
        found = fs.get_file_info(pafs.FileSelector(root, recursive=True))
        infos = sorted(
            (i for i in found if i.type == pafs.FileType.File and i.path.endswith(".parquet")),
            key=lambda i: i.path,
        )
        if not infos:
            raise DataError("data.path", f"{path}: no *.parquet files in this directory")
    else:
        infos = [info]
    return fs, [_File(i.path, prefix + i.path, i.size, i.mtime_ns) for i in infos]


def _open_parquet(fs: pafs.FileSystem, f: _File) -> pq.ParquetFile:
    try:
        # given the path (not an open file), ParquetFile owns the handle and closes it on exit
        return pq.ParquetFile(f.path, filesystem=fs, pre_buffer=False, buffer_size=_READ_BUFFER)
    except (pa.ArrowException, OSError) as err:
        raise DataError("data.path", f"{f.display}: not a readable Parquet file ({err})") from err


def _check_columns(pf: pq.ParquetFile, f: _File, cols: _Columns) -> None:
    """Every named column exists in this file; the message lists those that do."""
    names = pf.schema_arrow.names
    wanted = [("data.label_column", cols.label), ("data.input_column", cols.input)]
    if cols.split is not None:
        wanted.append(("data.split_column", cols.split))
    for field, column in wanted:
        if column not in names:
            raise DataError(
                field, f"{f.display}: no column {column!r}; columns: {', '.join(names)}"
            )


def _resolve_mode(t: pa.DataType, input_type: InputType, where: str) -> _Mode:
    """How to read the input column. A string column is text unless told it holds image paths:
    guessing from the strings would silently train a text model on file names, or vice versa."""
    t = rows.value_type(t)
    if rows.is_list(t) and input_type in ("auto", "vector"):
        v = t.value_type
        if not (pa.types.is_floating(v) or pa.types.is_integer(v)):
            raise DataError("data.input_column", f"{where}: vectors must hold numbers, found {t}")
        return "vector"
    if rows.is_binary(t) and input_type in ("auto", "image"):
        return "image_bytes"
    if rows.is_string(t) and input_type in ("auto", "text"):
        return "text"
    if rows.is_string(t) and input_type == "image":
        return "image_path"
    expect = {
        "auto": "a list of numbers (vector), binary (image) or string (text)",
        "vector": "a list of numbers",
        "image": "binary (encoded images) or string (image paths)",
        "text": "string",
    }[input_type]
    raise DataError("data.input_column", f"{where}: expected {expect}, found type {t}")


def _read_small_columns(
    fs: pafs.FileSystem, files: list[_File], cols: _Columns, input_type: InputType
) -> tuple[_Mode, list[_Chunk], list[_Chunk]]:
    """Check every file's columns and input type; read the label and split columns only."""
    modes: list[_Mode] = []
    labels: list[_Chunk] = []
    splits: list[_Chunk] = []
    offset = 0
    for f in files:
        with _open_parquet(fs, f) as pf:
            _check_columns(pf, f, cols)
            where = f"{f.display}, column {cols.input!r}"
            modes.append(_resolve_mode(pf.schema_arrow.field(cols.input).type, input_type, where))
            if modes[-1] != modes[0]:
                raise DataError(
                    "data.input_column",
                    f"{where}: reads as {modes[-1]} here, as {modes[0]} in {files[0].display}",
                )
            table = pf.read(columns=[c for c in (cols.label, cols.split) if c is not None])
        labels.append((f, rows.decoded(table.column(cols.label).combine_chunks()), offset))
        if cols.split is not None:
            splits.append((f, rows.decoded(table.column(cols.split).combine_chunks()), offset))
        offset += table.num_rows
    return modes[0], labels, splits


def _fingerprint(files: list[_File], column: str, input_type: InputType) -> str:
    """Names a cache file: a changed, added or removed Parquet file changes the name."""
    ident = [_CACHE_VERSION, column, input_type, [(f.display, f.size, f.mtime_ns) for f in files]]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:32]


def _converted_batches(
    fs: pafs.FileSystem, files: list[_File], writer: _Writer
) -> Iterator[pa.Array]:
    """The input column of every file in order, 1024 rows at a time, converted and checked."""
    offset = 0  # global row of the current file's row 0
    for f in files:
        with _open_parquet(fs, f) as pf:
            start = 0
            for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=[writer.column]):
                if len(batch):
                    yield writer.convert(batch.column(0), f, start, offset)
                    start += len(batch)
        offset += start


def _build_cache(fs: pafs.FileSystem, files: list[_File], writer: _Writer, target: str) -> None:
    """Stream every file's input column into `target`, atomically: write a private temp file and
    `os.replace` it, so concurrent workers of one node never see half a cache, and a failed scan
    leaves nothing behind."""
    tmp = f"{target}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with pa.OSFile(tmp, "wb") as sink:
            batches = _converted_batches(fs, files, writer)
            first = next(batches)  # open() has checked that there are rows
            meta = {_SCANNED: b"1" if writer.scan else b"0"}
            schema = pa.schema([("input", first.type)]).with_metadata(meta)  # type fixes D
            with pa.ipc.new_file(sink, schema) as ipc:
                for arr in itertools.chain([first], batches):
                    ipc.write_batch(pa.record_batch([arr], schema=schema))
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class _Mapped:
    """The memory-mapped cache: one Arrow array per record batch and where each batch starts.

    `take` gathers row by row from these chunks. Arrow's own `Table.take` concatenates all chunks
    of a column first: 60 ms and a full copy per batch on a 400 MB cache.
    """

    def __init__(self, path: str, mode: _Mode) -> None:
        reader = pa.ipc.open_file(pa.memory_map(path, "r"))
        self.scanned = (reader.schema.metadata or {}).get(_SCANNED) == b"1"
        chunks = [reader.get_batch(i).column(0) for i in range(reader.num_record_batches)]
        self.starts = np.cumsum([0] + [len(c) for c in chunks]).astype(np.int64)  # [C + 1]
        self.width = chunks[0].type.list_size if mode == "vector" and chunks else None
        # vectors: zero-copy [rows, D] views into the map; others: the Arrow arrays themselves
        self.chunks: list[Any] = (
            [c.values.to_numpy().reshape(-1, self.width) for c in chunks]
            if mode == "vector"
            else chunks
        )

    def __len__(self) -> int:
        return int(self.starts[-1])


class ParquetSource:
    """Labels (and splits) in memory, inputs from a memory-mapped local cache of the input column.

    Picklable without its data: a worker that unpickles it maps (or, on a fresh node, builds) its
    own node-local cache on first `take`, instead of receiving gigabytes through Ray.
    """

    def __init__(
        self,
        path: str,
        columns: _Columns,
        input_type: InputType,
        mode: _Mode,
        labels: np.ndarray,
        class_names: tuple[str, ...] | None,
        splits: np.ndarray | None,
        cache_dir: str | None,
        cache_name: str,
    ) -> None:
        self.path, self._columns, self._input_type, self._mode = path, columns, input_type, mode
        self.name = posixpath.basename(path.rstrip("/")).removesuffix(".parquet")
        self.kind: InputKind = _KIND[mode]
        self.labels, self.class_names, self.splits = labels, class_names, splits
        # the directory is resolved where the cache is used: each node has its own
        self._cache_dir, self._cache_name = cache_dir, cache_name
        self._width: int | None = None
        self._fs: pafs.FileSystem | None = None
        self._mapped: _Mapped | None = None

    @classmethod
    def open(
        cls,
        path: str,
        label_column: str,
        input_column: str,
        input_type: InputType = "auto",
        split_column: str | None = None,
        cache_dir: str | None = None,
        scan: bool = True,
    ) -> ParquetSource:
        """Read labels and splits, check every row (`scan`), and build or reuse the input cache.

        A cache file exists only if the pass that wrote it succeeded, so reusing a scanned one
        skips the pass: labels and splits are still read and checked on every open.
        """
        if input_type not in INPUT_TYPES:
            raise DataError(
                "data.input_type", f"unknown {input_type!r}; valid: {', '.join(INPUT_TYPES)}"
            )
        cols = _Columns(label_column, input_column, split_column)
        named = [c for c in (label_column, input_column, split_column) if c is not None]
        if len(set(named)) < len(named):
            raise DataError(
                "data.label_column", f"{path}: label, input and split columns must differ"
            )
        path = path if is_uri(path) else os.path.abspath(path)  # workers run in another cwd
        fs, files = _locate(path)
        mode, label_chunks, split_chunks = _read_small_columns(fs, files, cols, input_type)
        if sum(len(arr) for _, arr, _ in label_chunks) == 0:
            raise DataError("data.path", f"{path}: the data has no rows")
        labels, class_names = _read_labels(label_chunks, label_column)
        if len(np.unique(labels)) < 2:
            raise DataError(
                "data.label_column",
                f"{path}, column {label_column!r}: every row has the same "
                "class; metric learning needs at least 2",
            )
        splits = _read_splits(split_chunks, split_column) if split_column else None
        base = posixpath.basename(path.rstrip("/")).removesuffix(".parquet")
        key = _fingerprint(files, input_column, input_type)
        name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', base)[:40]}-{key}.arrow"
        source = cls(path, cols, input_type, mode, labels, class_names, splits, cache_dir, name)
        source._map(fs, files, scan)
        return source

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """(D,) for vectors; None for images and text, whose shape the preprocess decides."""
        return (self._width,) if self._width is not None else None

    def take(self, rows: np.ndarray) -> RawInputs:
        """Raw inputs of `rows`, in order: float32 [B, D], or a list of bytes / str."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)  # [B]
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows must be in [0, {len(self)}), got {rows.min()}..{rows.max()}")
        mapped = self._mapped or self._map(*_locate(self.path), scan=False)
        chunk = np.searchsorted(mapped.starts, rows, side="right") - 1  # [B]
        pairs = zip(chunk.tolist(), (rows - mapped.starts[chunk]).tolist(), strict=True)
        if self._mode == "vector":
            out = np.empty((len(rows), self._width or 0), dtype=np.float32)  # [B, D]
            for i, (c, j) in enumerate(pairs):
                out[i] = mapped.chunks[c][j]
            return out
        values = [mapped.chunks[c][j].as_py() for c, j in pairs]
        if self._mode == "image_path":
            return [self._read_image(p) for p in values]
        return values

    def _read_image(self, path: str) -> bytes:
        assert self._fs is not None
        try:
            with self._fs.open_input_stream(path) as f:
                return bytes(f.read())
        except OSError as err:
            raise DataError("data.input_column", f"{path}: cannot read image ({err})") from err

    @property
    def cache_file(self) -> str:
        """The node-local Arrow IPC file holding the input column."""
        return os.path.join(self._cache_dir or default_cache_dir(), self._cache_name)

    @property
    def fingerprint(self) -> str:
        """The files' identity (paths, sizes, modification times) and how they are read: the key
        of the checked cache, and part of the data's digest in MLflow (`data.summarize`)."""
        return self._cache_name.removesuffix(".arrow").rsplit("-", 1)[-1]

    def _map(self, fs: pafs.FileSystem, files: list[_File], scan: bool) -> _Mapped:
        """Map the cache, building it first if this node has none (or only an unscanned one and
        `scan` asks for checks). After unpickling, the files must still be those whose labels we
        carry, or labels and inputs would disagree."""
        key = _fingerprint(files, self._columns.input, self._input_type)
        if not self._cache_name.endswith(f"-{key}.arrow"):
            raise DataError("data.path", f"{self.path}: the data changed since it was opened")
        target = self.cache_file
        if not os.path.exists(target) or (scan and not _Mapped(target, self._mode).scanned):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            _build_cache(fs, files, _Writer(fs, self._mode, self._columns.input, scan), target)
        mapped = _Mapped(target, self._mode)
        if len(mapped) != len(self.labels):
            raise DataError(
                "data.path",
                f"{self.path}: cache {target} has {len(mapped)} rows, the data "
                f"{len(self.labels)}; delete the cache file",
            )
        self._fs, self._mapped, self._width = fs, mapped, mapped.width
        return mapped

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the map and the filesystem handle, which belong to one process."""
        return {**self.__dict__, "_fs": None, "_mapped": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
