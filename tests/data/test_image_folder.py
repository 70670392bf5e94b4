"""ImageFolderSource on small folders written by the test: ids, order, laziness and every error."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from minesearch.data import DataError
from minesearch.data.preprocess import ImagePreprocess, decode_image
from minesearch.data.sources import ImageFolderSource

CLASSES = ("emu", "cat", "dog")  # written unsorted: ids must follow the sorted names


def _save(path: Path, colour: tuple[int, int, int], fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), colour).save(path, format=fmt)


def _colour(class_name: str, i: int) -> tuple[int, int, int]:
    """Each file's colour encodes its class and index, so decoded bytes say which file they are."""
    return (sorted(CLASSES).index(class_name) * 50, i * 40, 7)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """3 classes x 4 images, plus the clutter a real folder has and a scan must skip."""
    root = tmp_path / "pets"
    for name in CLASSES:
        for i in range(4):
            # a sub-folder and an upper-case extension must still be found, in sorted order
            rel = {0: "a0.png", 1: "b1.PNG", 2: "sub/c2.png", 3: "d3.jpeg"}[i]
            _save(root / name / rel, _colour(name, i), "JPEG" if i == 3 else "PNG")
        (root / name / "notes.txt").write_text("not an image")
        (root / name / ".hidden.png").write_bytes(b"junk a scan would reject")
        _save(root / name / ".thumbs" / "x.png", (0, 0, 0))
    (root / "README.md").write_text("a file at the root is not a class")
    _save(root / ".cache" / "y.png", (0, 0, 0))
    return root


def _class_dir_files(root: Path, name: str) -> list[str]:
    return [str(root / name / f) for f in ("a0.png", "b1.PNG", "d3.jpeg", "sub/c2.png")]


# --- what it finds ----------------------------------------------------------------------------


def test_labels_class_names_and_row_order(root: Path) -> None:
    src = ImageFolderSource.open(root)
    assert src.name == "pets" and src.kind == "image" and src.splits is None
    assert src.input_shape is None
    assert src.class_names == ("cat", "dog", "emu")
    assert len(src) == 12
    assert src.labels.dtype == np.int64
    assert src.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    expected = [p for name in ("cat", "dog", "emu") for p in _class_dir_files(root, name)]
    assert [src.path(r) for r in range(12)] == expected


def test_take_reads_the_rows_in_the_order_asked(root: Path) -> None:
    src = ImageFolderSource.open(root)
    rows = np.array([11, 0, 5, 5], dtype=np.int64)
    raw = src.take(rows)
    assert raw == [Path(src.path(r)).read_bytes() for r in rows]
    # the first PNG of class "cat" (row 0) carries colour (0, 0, 7): bytes match the file
    assert decode_image(raw[1])[:, 0, 0].tolist() == [0, 0, 7]


def test_take_is_lazy_files_are_read_when_asked(root: Path) -> None:
    src = ImageFolderSource.open(root)
    _save(Path(src.path(4)), (1, 2, 3))  # rewritten after open: take sees the new content
    assert decode_image(src.take(np.array([4]))[0])[:, 0, 0].tolist() == [1, 2, 3]
    Path(src.path(4)).unlink()
    with pytest.raises(DataError, match=r"data\.path: .*a0\.png: could not read the file"):
        src.take(np.array([4]))


def test_source_feeds_the_image_preprocess(root: Path) -> None:
    src = ImageFolderSource.open(root)
    out = ImagePreprocess(size=8)(src.take(np.arange(12)), True, torch.Generator().manual_seed(0))
    assert out.shape == (12, 3, 8, 8)


# --- errors -----------------------------------------------------------------------------------


def _error(root: Path, scan: bool = True) -> DataError:
    with pytest.raises(DataError) as info:
        ImageFolderSource.open(root, scan=scan)
    assert info.value.field == "data.path"
    return info.value


def test_missing_root(tmp_path: Path) -> None:
    assert "no such directory" in str(_error(tmp_path / "nope"))


def test_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "pets.png").write_bytes(b"x")
    assert "not a directory" in str(_error(tmp_path / "pets.png"))


def test_no_class_directories(tmp_path: Path) -> None:
    _save(tmp_path / "loose.png", (0, 0, 0))  # images at the root, no class folders
    _save(tmp_path / ".hidden" / "x.png", (0, 0, 0))
    assert "no class directories" in str(_error(tmp_path))


def test_class_directories_without_images_are_all_named(root: Path) -> None:
    (root / "fox").mkdir()
    (root / "yak").mkdir()
    (root / "yak" / "notes.txt").write_text("no images here")
    message = str(_error(root))
    assert "class directories with no image files" in message
    assert "'fox', 'yak'" in message and ".png" in message


def test_a_single_class_is_not_enough(tmp_path: Path) -> None:
    _save(tmp_path / "only" / "a.png", (0, 0, 0))
    assert "found 1 class directory ('only')" in str(_error(tmp_path))


def test_scan_names_the_file_pillow_cannot_read(root: Path) -> None:
    bad = root / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    message = str(_error(root))
    assert "1 file(s) Pillow cannot read" in message and str(bad) in message


def test_scan_lists_a_few_bad_files_and_counts_the_rest(root: Path) -> None:
    for i in range(7):
        (root / "cat" / f"z{i}.jpg").write_bytes(b"nope")
    message = str(_error(root))
    assert message.count("z") >= 5 and "7 file(s)" in message and "and 2 more" in message


def test_scan_verifies_the_data_not_just_the_header(root: Path) -> None:
    good = BytesIO()
    Image.new("RGB", (12, 10), (9, 9, 9)).save(good, format="PNG")
    data = bytearray(good.getvalue())
    data[data.index(b"IDAT") + 6] ^= 0xFF  # the header still parses; the pixel data's CRC fails
    (root / "emu" / "crc.png").write_bytes(bytes(data))
    assert "crc.png" in str(_error(root))


def test_without_scan_a_bad_file_surfaces_at_decode(root: Path) -> None:
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    src = ImageFolderSource.open(root, scan=False)
    row = next(r for r in range(len(src)) if src.path(r).endswith("broken.png"))
    with pytest.raises(ValueError, match="image 1 of the batch"):
        ImagePreprocess(size=8)(src.take(np.array([0, row])), train=False)
