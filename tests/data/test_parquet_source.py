"""ParquetSource: lazy take against eager reads, its error messages, its cache, its memory."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from minesearch.data import DataError
from minesearch.data.sources import ParquetSource

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Caches go to a per-test directory, never to the user's ~/.cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("MINESEARCH_CACHE_DIR", str(path))
    return path


def _write(path: Path, columns: dict[str, pa.Array], row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def _vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))  # float64 [n, d]


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4 + i % 3, 5), (i % 256, 7, 9)).save(buf, format="PNG")
    return buf.getvalue()


def _labels(n: int, classes: int = 5) -> pa.Array:
    return pa.array(np.arange(n) % classes)


def _random_row_sets(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, n, size) for size in (1, 7, 32, 64)] + [rng.permutation(n)]


def _error(path: Path | str, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        ParquetSource.open(str(path), **kwargs)  # type: ignore[arg-type]
    return info.value


# --- take() equals an eager read ----------------------------------------------------------------


@pytest.mark.parametrize(
    "arrow_type",
    [
        pa.list_(pa.float64()),
        pa.large_list(pa.float32()),
        pa.list_(pa.float32(), 6),
        pa.list_(pa.int32()),
    ],
)
def test_vectors_take_equals_eager_read(tmp_path: Path, arrow_type: pa.DataType) -> None:
    values = _vectors(300, 6)
    if pa.types.is_integer(arrow_type.value_type):
        values = np.round(values * 100)
    path = _write(
        tmp_path / "v.parquet",
        {"label": _labels(300), "x": pa.array(list(values), type=arrow_type)},
        row_group_size=50,
    )
    src = ParquetSource.open(str(path), "label", "x")
    eager = np.stack(pq.read_table(path).column("x").to_pylist()).astype(np.float32)
    assert (src.kind, len(src), src.input_shape, src.name) == ("tensor", 300, (6,), "v")
    np.testing.assert_array_equal(src.labels, np.arange(300) % 5)
    assert src.labels.dtype == np.int64 and src.class_names is None and src.splits is None
    for rows in _random_row_sets(300):
        got = src.take(rows)
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        np.testing.assert_array_equal(got, eager[rows])
    assert np.asarray(src.take(np.array([], dtype=np.int64))).shape == (0, 6)


def test_image_bytes_take_equals_eager_read(tmp_path: Path) -> None:
    images = [_png(i) for i in range(40)]
    path = _write(tmp_path / "img.parquet", {"label": _labels(40), "img": pa.array(images)}, 16)
    src = ParquetSource.open(str(path), "label", "img")
    eager = pq.read_table(path).column("img").to_pylist()
    assert (src.kind, src.input_shape) == ("image", None)
    for rows in _random_row_sets(40):
        assert src.take(rows) == [eager[r] for r in rows]


def test_image_paths_are_read_relative_to_the_parquet_file(tmp_path: Path) -> None:
    root = tmp_path / "set"
    (root / "pics").mkdir(parents=True)
    for i in range(30):
        (root / "pics" / f"{i}.png").write_bytes(_png(i))
    rel = [f"../pics/{i}.png" for i in range(30)]  # relative to meta/, where the file is
    path = _write(root / "meta" / "index.parquet", {"label": _labels(30), "p": pa.array(rel)})
    src = ParquetSource.open(str(path), "label", "p", input_type="image")
    assert src.kind == "image"
    for rows in _random_row_sets(30):
        assert src.take(rows) == [_png(int(r)) for r in rows]


def test_string_column_is_text_unless_told_image(tmp_path: Path) -> None:
    texts = [f"sample {i} ünïcode" for i in range(50)]
    path = _write(tmp_path / "t.parquet", {"label": _labels(50), "t": pa.array(texts)}, 8)
    src = ParquetSource.open(str(path), "label", "t")
    eager = pq.read_table(path).column("t").to_pylist()
    assert (src.kind, src.input_shape) == ("text", None)
    for rows in _random_row_sets(50):
        assert src.take(rows) == [eager[r] for r in rows]


def test_directory_of_files_is_one_table_in_sorted_order(tmp_path: Path) -> None:
    root = tmp_path / "parts"
    values = _vectors(90, 4)
    # written out of order, one in a subdirectory; a non-Parquet file is ignored
    for name, lo in (("b/part-1.parquet", 30), ("c.parquet", 60), ("a.parquet", 0)):
        cols = {"label": _labels(30), "x": pa.array(list(values[lo : lo + 30]))}
        _write(root / name, cols, row_group_size=7)
    (root / "README.txt").write_text("not data")
    src = ParquetSource.open(str(root), "label", "x")
    eager = np.concatenate(
        [
            np.stack(pq.read_table(root / n).column("x").to_pylist())
            for n in ("a.parquet", "b/part-1.parquet", "c.parquet")
        ]
    ).astype(np.float32)
    assert len(src) == 90 and src.name == "parts"
    for rows in _random_row_sets(90):
        np.testing.assert_array_equal(src.take(rows), eager[rows])


def test_file_uri(tmp_path: Path) -> None:
    values = _vectors(20, 3)
    path = _write(tmp_path / "u.parquet", {"label": _labels(20), "x": pa.array(list(values))})
    src = ParquetSource.open(path.as_uri(), "label", "x")
    np.testing.assert_array_equal(src.take(np.arange(20)), values.astype(np.float32))
    err = _error(path.as_uri(), label_column="nope", input_column="x")
    assert f"file://{path}" in str(err)


def test_string_labels_become_sorted_class_names(tmp_path: Path) -> None:
    names = ["zebra", "ant", "moth", "ant", "zebra", "émeu"]
    path = _write(
        tmp_path / "s.parquet", {"y": pa.array(names), "x": pa.array(list(_vectors(6, 2)))}
    )
    src = ParquetSource.open(str(path), "y", "x")
    assert src.class_names == ("ant", "moth", "zebra", "émeu")
    assert [src.class_names[i] for i in src.labels] == names
    assert src.labels.dtype == np.int64


def test_split_column(tmp_path: Path) -> None:
    splits = ["train", "val", "test", "train"] * 5
    cols = {"label": _labels(20), "x": pa.array(list(_vectors(20, 2))), "s": pa.array(splits)}
    path = _write(tmp_path / "split.parquet", cols)
    src = ParquetSource.open(str(path), "label", "x", split_column="s")
    assert src.splits is not None and src.splits.tolist() == splits


def test_pickle_carries_labels_not_data(tmp_path: Path, cache_dir: Path) -> None:
    """A Ray worker gets the source by pickle: it must map its own cache, or rebuild it."""
    values = _vectors(2000, 16)
    path = _write(tmp_path / "p.parquet", {"label": _labels(2000), "x": pa.array(list(values))})
    src = ParquetSource.open(str(path), "label", "x")
    blob = pickle.dumps(src)
    assert len(blob) < values.nbytes / 4
    os.remove(src.cache_file)  # a node that has never seen the data
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.take(np.arange(5)), values[:5].astype(np.float32))
    assert os.path.exists(again.cache_file)


# --- every problem is a DataError naming the field, the file and the row ------------------------


def _vector_file(tmp_path: Path, rows: list[object], name: str = "bad.parquet") -> Path:
    return _write(
        tmp_path / name,
        {"label": _labels(len(rows)), "x": pa.array(rows, type=pa.list_(pa.float64()))},
    )


@pytest.mark.parametrize(
    ("rows", "row", "words"),
    [
        ([[1.0, 2.0]] * 5 + [[1.0]] + [[1.0, 2.0]] * 4, 5, "has 1 values"),
        ([[1.0, 2.0]] * 3 + [[float("nan"), 0.0]] + [[1.0, 2.0]] * 6, 3, "NaN or infinity"),
        ([[1.0, 2.0]] * 8 + [[float("inf"), 0.0], [1.0, 2.0]], 8, "NaN or infinity"),
        ([[1.0, 2.0]] * 6 + [None] + [[1.0, 2.0]] * 3, 6, "is null"),
        ([[1.0, 2.0]] * 2 + [[1.0, None]] + [[1.0, 2.0]] * 7, 2, "contains a null value"),
    ],
)
def test_bad_vectors(tmp_path: Path, rows: list[object], row: int, words: str) -> None:
    err = _error(_vector_file(tmp_path, rows), label_column="label", input_column="x")
    assert err.field == "data.input_column"
    assert "bad.parquet" in str(err) and "column 'x'" in str(err) and words in str(err)
    assert f"row {row} (global row {row})" in str(err)


def test_bad_row_in_second_file_names_that_file_and_the_global_row(tmp_path: Path) -> None:
    _vector_file(tmp_path / "d", [[1.0, 2.0]] * 10, "1.parquet")
    _vector_file(tmp_path / "d", [[1.0, 2.0]] * 4 + [[1.0, float("nan")]], "2.parquet")
    err = _error(tmp_path / "d", label_column="label", input_column="x")
    assert f"{tmp_path / 'd' / '2.parquet'}, column 'x', row 4 (global row 14)" in str(err)


def test_non_numeric_vectors(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.parquet", {"label": _labels(4), "x": pa.array([["a"]] * 4)})
    err = _error(path, label_column="label", input_column="x")
    assert err.field == "data.input_column" and "bad.parquet" in str(err)
    assert "numbers" in str(err) and "string" in str(err)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("data.label_column", {"label_column": "nope", "input_column": "x"}),
        ("data.input_column", {"label_column": "label", "input_column": "nope"}),
        (
            "data.split_column",
            {"label_column": "label", "input_column": "x", "split_column": "nope"},
        ),
    ],
)
def test_missing_column_lists_the_columns(
    tmp_path: Path, field: str, kwargs: dict[str, str]
) -> None:
    path = _vector_file(tmp_path, [[1.0]] * 4)
    err = _error(path, **kwargs)
    assert err.field == field
    assert str(path) in str(err) and "no column 'nope'; columns: label, x" in str(err)


def test_label_problems(tmp_path: Path) -> None:
    x = pa.array(list(_vectors(6, 2)))
    path = _write(tmp_path / "one.parquet", {"label": pa.array([3] * 6), "x": x})
    err = _error(path, label_column="label", input_column="x")
    assert err.field == "data.label_column" and "one.parquet" in str(err)
    assert "column 'label'" in str(err) and "same class" in str(err)
    path = _write(tmp_path / "null.parquet", {"label": pa.array([0, 1, 0, None, 1, 0]), "x": x})
    err = _error(path, label_column="label", input_column="x")
    assert err.field == "data.label_column"
    assert f"{path}, column 'label', row 3 (global row 3) is null" in str(err)


def test_empty_data_and_not_parquet(tmp_path: Path) -> None:
    empty = pa.table({"label": pa.array([], pa.int64()), "x": pa.array([], pa.list_(pa.float32()))})
    pq.write_table(empty, tmp_path / "empty.parquet")
    err = _error(tmp_path / "empty.parquet", label_column="label", input_column="x")
    assert err.field == "data.path" and "no rows" in str(err)
    (tmp_path / "fake.parquet").write_text("label,x\n1,2\n")
    err = _error(tmp_path / "fake.parquet", label_column="label", input_column="x")
    assert err.field == "data.path" and "fake.parquet" in str(err) and "not a readable" in str(err)
    err = _error(tmp_path / "missing.parquet", label_column="label", input_column="x")
    assert err.field == "data.path" and "no such file" in str(err)


def test_bad_split_value(tmp_path: Path) -> None:
    cols = {
        "label": _labels(6),
        "x": pa.array(list(_vectors(6, 2))),
        "s": pa.array(["train", "val", "test", "valid", "train", "val"]),
    }
    path = _write(tmp_path / "split.parquet", cols)
    err = _error(path, label_column="label", input_column="x", split_column="s")
    assert err.field == "data.split_column"
    assert f"{path}, column 's', row 3 (global row 3): split 'valid'" in str(err)
    assert "train, val, test" in str(err)


def test_bad_text(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.parquet", {"label": _labels(5), "t": pa.array(["a", "b", " \t", "c", "d"])}
    )
    err = _error(path, label_column="label", input_column="t")
    assert err.field == "data.input_column"
    assert f"{path}, column 't', row 2 (global row 2) is empty text" in str(err)
    path = _write(tmp_path / "n.parquet", {"label": _labels(3), "t": pa.array(["a", None, "c"])})
    assert "row 1 (global row 1) is null" in str(
        _error(path, label_column="label", input_column="t")
    )


def test_bad_images(tmp_path: Path) -> None:
    images = [_png(0), _png(1), b"\x89PNG not really", _png(3)]
    path = _write(tmp_path / "i.parquet", {"label": _labels(4), "img": pa.array(images)})
    err = _error(path, label_column="label", input_column="img")
    assert err.field == "data.input_column" and "not an image Pillow can read" in str(err)
    assert f"{path}, column 'img', row 2 (global row 2)" in str(err)
    (tmp_path / "ok.png").write_bytes(_png(0))
    rel = pa.array(["ok.png", "ok.png", "ok.png", "gone.png"])
    path = _write(tmp_path / "p.parquet", {"label": _labels(4), "p": rel})
    err = _error(path, label_column="label", input_column="p", input_type="image")
    assert err.field == "data.input_column"
    assert f"{path}, column 'p', row 3 (global row 3): image file 'gone.png' does not exist" in str(
        err
    )


def test_input_type_must_fit_the_column(tmp_path: Path) -> None:
    path = _vector_file(tmp_path, [[1.0]] * 4)
    err = _error(path, label_column="label", input_column="x", input_type="text")
    assert err.field == "data.input_column" and "expected string" in str(err)
    err = _error(path, label_column="label", input_column="x", input_type="audio")
    assert err.field == "data.input_type" and "auto, vector, image, text" in str(err)


# --- the cache --------------------------------------------------------------------------------


def test_cache_is_reused_and_failed_scans_leave_nothing(tmp_path: Path, cache_dir: Path) -> None:
    path = _write(
        tmp_path / "c.parquet", {"label": _labels(50), "x": pa.array(list(_vectors(50, 3)))}
    )
    first = ParquetSource.open(str(path), "label", "x")
    stamp = os.stat(first.cache_file).st_mtime_ns
    second = ParquetSource.open(str(path), "label", "x")
    assert second.cache_file == first.cache_file and os.stat(first.cache_file).st_mtime_ns == stamp
    assert os.listdir(cache_dir) == [os.path.basename(first.cache_file)]
    for f in cache_dir.iterdir():
        f.unlink()
    bad = _vector_file(tmp_path, [[1.0, 2.0]] * 3000 + [[float("nan"), 1.0]])  # fails in batch 3
    _error(bad, label_column="label", input_column="x")
    assert os.listdir(cache_dir) == []


def test_unscanned_cache_is_rescanned_when_asked(tmp_path: Path, cache_dir: Path) -> None:
    bad = _vector_file(tmp_path, [[1.0, 2.0]] * 3 + [[float("nan"), 1.0]])
    src = ParquetSource.open(str(bad), "label", "x", scan=False)  # NaN is not looked for
    assert np.isnan(np.asarray(src.take(np.array([3])))).any()
    err = _error(bad, label_column="label", input_column="x")
    assert "row 3 (global row 3) has a NaN" in str(err)
    assert os.listdir(cache_dir) == [os.path.basename(src.cache_file)]  # the old one stays


def test_changed_file_gets_a_new_cache(tmp_path: Path, cache_dir: Path) -> None:
    path = _vector_file(tmp_path, [[1.0, 2.0]] * 4)
    first = ParquetSource.open(str(path), "label", "x")
    _vector_file(tmp_path, [[3.0, 4.0]] * 5)
    second = ParquetSource.open(str(path), "label", "x")
    assert second.cache_file != first.cache_file
    np.testing.assert_array_equal(second.take(np.array([4])), [[3.0, 4.0]])


# --- memory --------------------------------------------------------------------------------------

N_ROWS, DIM, CAP_MB = 200_000, 512, 250

_WRITE = """
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, sys
npy, out, n, d = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mm = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(n, d))
rng = np.random.default_rng(0)
for s in range(0, n, 10_000):
    mm[s : s + 10_000] = rng.standard_normal((min(10_000, n - s), d), dtype=np.float32)
mm.flush()
offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32))
x = pa.ListArray.from_arrays(offsets, pa.array(mm.reshape(-1)))  # zero-copy over the file
table = pa.table({"label": pa.array(np.arange(n) % 1000), "x": x})
pq.write_table(table, out, row_group_size=n)  # ONE row group: pyarrow's default shape
"""

_MEASURE = """
import json, resource, sys, threading, time
import numpy as np

def status():
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) * 1024 for k, v in (l.split(":", 1) for l in f) if "kB" in v}

peak = [0]
def sample():
    while True:
        peak[0] = max(peak[0], status()["RssAnon"])
        time.sleep(0.002)

mode, path, cap_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
import pyarrow.parquet as pq
from minesearch.data.sources import ParquetSource
threading.Thread(target=sample, daemon=True).start()  # its stack is part of the baseline
time.sleep(0.05)
base = status()
cap = base["VmData"] + cap_mb * 2**20
resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
out = {"baseline_vmdata": base["VmData"], "baseline_rss_anon": base["RssAnon"], "cap": cap}
t = time.perf_counter()
try:
    if mode == "eager":
        out["rows"] = pq.read_table(path).num_rows
    else:
        src = ParquetSource.open(path, "label", "x")
        out["open_s"] = time.perf_counter() - t
        rng = np.random.default_rng(0)
        perm = rng.permutation(len(src))
        t = time.perf_counter()
        for s in range(0, len(src), 64):
            batch = src.take(perm[s : s + 64])
            assert batch.shape == (len(perm[s : s + 64]), src.input_shape[0])
        out["epoch_s"] = time.perf_counter() - t
        rows = rng.integers(0, len(src), 32)
        t = time.perf_counter()
        for _ in range(2000):
            src.take(rows)
        out["take32_us"] = (time.perf_counter() - t) / 2000 * 1e6
        out["check_rows"] = [0, 12345, len(src) - 1]
        out["check_sums"] = src.take(np.array(out["check_rows"])).sum(axis=1).tolist()
        out["cache_bytes"] = __import__("os").path.getsize(src.cache_file)
except MemoryError as err:
    out["memory_error"] = str(err)
time.sleep(0.01)
out["peak_rss_anon"] = peak[0]
out["final_vmdata"] = status()["VmData"]
print(json.dumps(out))
"""


def _run(code: str, *args: object, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1]) if proc.stdout.strip() else {}


@pytest.mark.slow
def test_epoch_over_400mb_runs_in_a_fraction_of_that_memory(
    tmp_path: Path, cache_dir: Path
) -> None:
    """Open (the streaming pass) and a full epoch of random 64-row batches under an RLIMIT_DATA
    cap of baseline + 250 MB on a 410 MB single-row-group file; the same cap makes an eager
    `pq.read_table` fail, so the test cannot pass by the cap being loose."""
    npy, path = tmp_path / "v.npy", tmp_path / "big.parquet"
    # A subprocess writes the file (pyarrow's writer buffers a whole row group) from a memmap, so
    # pytest never holds the data; ParquetWriter chunks would each close a row group, and small
    # groups would hide the case that matters: a column chunk larger than the cap.
    try:
        _check_epoch_memory(npy, path, cache_dir)
    finally:  # 1.2 GB of files: do not leave them in pytest's kept temp dirs
        for f in [npy, path, *cache_dir.glob("*")]:
            f.unlink(missing_ok=True)


def _check_epoch_memory(npy: Path, path: Path, cache_dir: Path) -> None:
    _run(_WRITE, npy, path, N_ROWS, DIM)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    env = {**os.environ, "PYTHONPATH": str(REPO), "MINESEARCH_CACHE_DIR": str(cache_dir)}
    lazy = _run(_MEASURE, "lazy", path, CAP_MB, env=env)
    eager = _run(_MEASURE, "eager", path, CAP_MB, env=env)
    assert "memory_error" not in lazy, lazy
    data_bytes = N_ROWS * DIM * 4
    mb = 2**20
    print(
        f"\ndata {data_bytes / mb:.0f} MiB float32 (parquet {path.stat().st_size / mb:.0f} MiB, "
        f"cache {lazy['cache_bytes'] / mb:.0f} MiB); cap VmData baseline "
        f"{lazy['baseline_vmdata'] / mb:.0f} + {CAP_MB} MiB; "
        f"peak RssAnon {lazy['peak_rss_anon'] / mb:.0f} MiB "
        f"(baseline {lazy['baseline_rss_anon'] / mb:.0f}); "
        f"open {lazy['open_s']:.1f} s, epoch {lazy['epoch_s']:.2f} s, "
        f"take(32) {lazy['take32_us']:.0f} us; eager read: {eager.get('memory_error')}"
    )
    assert "memory_error" in eager, eager  # the cap is real: the plain read does not fit
    assert lazy["peak_rss_anon"] - lazy["baseline_rss_anon"] < data_bytes / 4
    ref = np.load(npy, mmap_mode="r")
    expected = [float(ref[r].sum(dtype=np.float32)) for r in lazy["check_rows"]]
    np.testing.assert_allclose(lazy["check_sums"], expected, rtol=1e-5)


def test_dictionary_encoded_labels_and_splits(tmp_path: Path) -> None:
    """pandas categoricals arrive dictionary-encoded; they read like plain strings."""
    names = pa.array(["b", "a", "b", "c"]).dictionary_encode()
    splits = pa.array(["train", "val", "test", "train"]).dictionary_encode()
    cols = {"y": names, "x": pa.array(list(_vectors(4, 2))), "s": splits}
    src = ParquetSource.open(str(_write(tmp_path / "d.parquet", cols)), "y", "x", split_column="s")
    assert src.class_names == ("a", "b", "c") and src.labels.tolist() == [1, 0, 1, 2]
    assert src.splits is not None and src.splits.tolist() == ["train", "val", "test", "train"]


def test_relative_path_survives_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray workers do not run in the driver's cwd: the source keeps an absolute path."""
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    _vector_file(tmp_path / "a", [[1.0, 2.0], [3.0, 4.0]], "r.parquet")
    src = ParquetSource.open("r.parquet", "label", "x")
    os.remove(src.cache_file)
    monkeypatch.chdir(tmp_path)
    again = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(again.take(np.array([1])), [[3.0, 4.0]])
