"""A folder of images, one sub-folder per class: the layout most image data sets ship in.

Only paths and labels stay in memory; `take` reads the files of one batch, so a data set larger
than a worker's memory still trains. Class ids come from the sorted directory names (as in
torchvision's ImageFolder), so the same folder always gives the same ids on every worker.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from minesearch.config.vocab import InputKind
from minesearch.data._errors import DataError

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
)

__all__ = ["ImageFolderSource"]

_FIELD = "data.path"
_MAX_LISTED = 5  # bad files named in one error; the count says how many more there are


class ImageFolderSource:
    """`root/<class>/<image>` (images may sit in sub-folders of a class folder)."""

    kind: InputKind = "image"

    def __init__(
        self, name: str, paths: list[str], labels: np.ndarray, class_names: tuple[str, ...]
    ) -> None:
        """Prefer `open`, which scans and checks a folder; this only stores what it found."""
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.name = name
        self._paths = np.asarray(paths, dtype=object)  # [N] str: fancy-indexable by a batch's rows
        self.labels: np.ndarray = np.asarray(labels, dtype=np.int64)
        self.class_names: tuple[str, ...] | None = class_names
        self.splits: np.ndarray | None = None  # a folder layout has no split of its own

    @classmethod
    def open(cls, root: str | Path, scan: bool = True) -> ImageFolderSource:
        """List `root`'s class folders and their image files, sorted, and check them.

        Hidden files and folders (a leading dot) and files without an image extension are
        skipped. With `scan`, every file is opened by Pillow now, so that a corrupt file is named
        before the search starts rather than failing a trial halfway through an epoch.
        """
        root = Path(root)
        class_dirs = _class_dirs(root)
        files = {d.name: _image_files(d) for d in class_dirs}
        empty = [name for name, paths in files.items() if not paths]
        if empty:
            raise DataError(
                _FIELD,
                f"{root}: class director{'y' if len(empty) == 1 else 'ies'} with no image files "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}): {', '.join(map(repr, empty))}",
            )
        if len(class_dirs) < 2:
            raise DataError(
                _FIELD,
                f"{root}: found {len(class_dirs)} class directory ({class_dirs[0].name!r}); "
                "metric learning needs at least 2 classes (one sub-folder per class)",
            )
        class_names = tuple(d.name for d in class_dirs)
        paths = [p for name in class_names for p in files[name]]
        labels = np.repeat(
            np.arange(len(class_names), dtype=np.int64), [len(files[n]) for n in class_names]
        )
        if scan:
            _check_readable(paths)
        return cls(root.resolve().name, paths, labels, class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        n_classes = len(self.class_names or ())
        return f"ImageFolderSource({self.name!r}, {len(self)} images, {n_classes} classes)"

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Images differ in size until the preprocess crops them: no fixed shape."""
        return None

    def path(self, row: int) -> str:
        """The file behind `row`: lets a caller name the file a decode error came from."""
        return str(self._paths[row])

    def take(self, rows: np.ndarray) -> list[bytes]:
        """The encoded files of `rows`, in that order, read now (nothing is cached)."""
        out = []
        for path in self._paths[np.asarray(rows, dtype=np.int64)]:
            try:
                out.append(Path(path).read_bytes())
            except OSError as err:
                raise DataError(_FIELD, f"{path}: could not read the file ({err})") from err
        return out


def _class_dirs(root: Path) -> list[Path]:
    """The visible sub-directories of `root`, sorted by name: their order defines class ids."""
    if not root.exists():
        raise DataError(_FIELD, f"{root}: no such directory")
    if not root.is_dir():
        raise DataError(_FIELD, f"{root}: not a directory (expected root/<class>/<image files>)")
    dirs = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )
    if not dirs:
        raise DataError(
            _FIELD, f"{root}: no class directories (expected root/<class>/<image files>)"
        )
    return dirs


def _image_files(class_dir: Path) -> list[str]:
    """Image files anywhere under `class_dir`, hidden ones skipped, sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # prune hidden folders
        for f in filenames:
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                found.append(os.path.join(dirpath, f))
    return sorted(found)


def _check_readable(paths: list[str]) -> None:
    """Have Pillow identify and verify every file; name the first few that fail, and the count."""
    bad = []
    for path in paths:
        try:
            with Image.open(path) as img:
                img.verify()
        except Exception as err:  # Pillow's format plugins raise OSError, SyntaxError, ...
            bad.append(f"{path} ({err})")
    if bad:
        more = f" and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
        raise DataError(
            _FIELD,
            f"{len(bad)} file(s) Pillow cannot read as images: "
            f"{'; '.join(bad[:_MAX_LISTED])}{more}",
        )
