"""scikit-learn's 8x8 digits as an in-memory source: the quickstart's data, shipped with sklearn."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minesearch.config.vocab import InputKind
from minesearch.data._errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Inputs and their class labels, in memory, in the dtypes the model and the losses expect.

    The `Source` of small data sets (digits): `take` is plain indexing.

    `labels` keep the original class ids (not remapped per split) so that a class can be traced from
    the split back to the file; `class_names[i]` is the original name of class id `i` when the file
    stored labels as strings.
    """

    inputs: np.ndarray  # float32; [N, D] feature vectors or [N, C, H, W] images
    labels: np.ndarray  # int64 [N]
    name: str
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.labels.ndim != 1 or len(self.labels) != len(self.inputs):
            raise DataError(
                "data",
                f"dataset {self.name!r}: labels must be 1-D with one entry per input "
                f"(inputs {self.inputs.shape}, labels {self.labels.shape})",
            )

    @property
    def kind(self) -> InputKind:
        return "tensor"

    @property
    def splits(self) -> np.ndarray | None:
        return None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.inputs[rows]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: what the model's first layer has to accept."""
        return tuple(int(d) for d in self.inputs.shape[1:])

    def subset(self, idx: np.ndarray) -> Dataset:
        """Rows `idx` (copied), keeping the original class ids and names."""
        return Dataset(self.inputs[idx], self.labels[idx], self.name, self.class_names)


def load_digits_dataset() -> Dataset:
    """scikit-learn's 8x8 digits: bundled with sklearn, so tests and quickstart need no download.

    Read from the CSV inside sklearn's package (what `sklearn.datasets.load_digits` reads) without
    importing sklearn: that import alone takes ~2 s on 2 cores, longer than `minesearch validate`
    may take in all. `load_digits` is the fallback should the file ever move.
    """
    rows = _digits_rows()
    images = rows[:, :64].reshape(-1, 8, 8) / 16.0  # [N, 8, 8], pixel values 0..16
    inputs = images[:, None, :, :].astype(np.float32)  # [N, 1, 8, 8]
    return Dataset(inputs, rows[:, 64].astype(np.int64), "digits")


def _digits_rows() -> np.ndarray:
    """[N, 65] float: 64 pixels then the digit, one row per image, as sklearn stores them."""
    spec = importlib.util.find_spec("sklearn")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return np.loadtxt(path, delimiter=",", dtype=np.float64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.column_stack([digits.data, digits.target]).astype(np.float64)
