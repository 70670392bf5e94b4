"""An export as an MLflow pyfunc model's body: what `mlflow.pyfunc.load_model(...).predict` runs.

The MLflow side (the `PythonModel`, logging, the registry) is `minesearch.tracking`'s; it gets the
embedding function from here by reference (`load_embedder`), so tracking needs no import of this
room. `predict` goes the same way as `minesearch embed`: the TorchScript export loaded by
`load_exported`, and each input turned into raw inputs by embed's own column rules (`_embed._Rows`)
from an Arrow array, so a pyfunc prediction and an `embed` row are the same computation.

Inputs `predict` takes (the logged signature shows one): for vectors a float array [B, D] (or a
DataFrame of one list column, or of D number columns); for text a DataFrame of one string column
(or a list of strings); for images a DataFrame of one column of encoded image bytes (or of image
paths, relative to the working directory).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from minesearch.data import RawInputs
from minesearch.export._embed_parquet import DEFAULT_INPUT_COLUMN, EmbedError, _mode, _Rows
from minesearch.export._formats import ExportedModel, load_exported

__all__ = ["Embedder", "example_input", "load_embedder"]

_WHERE = "the model's input"


class Embedder:
    """A loaded export, called on what `predict` receives: -> float32 embeddings [B, E]."""

    def __init__(self, model: ExportedModel) -> None:
        self.model = model

    def __call__(self, model_input: Any) -> np.ndarray:
        arr = self._arrow(model_input)
        if len(arr) == 0:
            return np.zeros((0, self.model.embedding_dim), dtype=np.float32)
        mode = _mode(self.model, arr.type, "auto", _WHERE)
        reader = _Rows(Path("."), "input", mode, self.model.settings.get("input_shape"))
        raw = reader.raw(arr, 0)
        return self.model(raw)

    def _arrow(self, model_input: Any) -> pa.Array:
        """One Arrow column of the input: what `minesearch embed` reads from a Parquet file."""
        if isinstance(model_input, pd.DataFrame):
            return self._column(model_input)
        if isinstance(model_input, pd.Series):
            return pa.array(model_input.tolist())
        if isinstance(model_input, np.ndarray) and model_input.dtype.kind in "fiu":
            flat = np.ascontiguousarray(model_input, dtype=np.float32).reshape(len(model_input), -1)
            return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
        if isinstance(model_input, (list, tuple, np.ndarray)):
            values = list(model_input)
            if self.model.kind == "tensor":
                return self._arrow(np.asarray(values, dtype=np.float32))
            return pa.array(values)
        raise EmbedError(f"cannot embed a {type(model_input).__name__}: {_accepted(self.model)}")

    def _column(self, frame: pd.DataFrame) -> pa.Array:
        """The export's input column, else the only column; for vectors, all-number columns are
        the features of one row each."""
        named = self.model.settings.get("input_column") or DEFAULT_INPUT_COLUMN
        if named in frame.columns:
            return pa.array(frame[named].tolist())
        if len(frame.columns) == 1:
            return pa.array(frame[frame.columns[0]].tolist())
        if self.model.kind == "tensor" and all(
            pd.api.types.is_numeric_dtype(t) for t in frame.dtypes
        ):
            return self._arrow(frame.to_numpy(dtype=np.float32))
        raise EmbedError(
            f"the input has columns {list(frame.columns)} and none is {named!r}: "
            f"{_accepted(self.model)}"
        )


def _accepted(model: ExportedModel) -> str:
    return {
        "tensor": "give a float array [rows, features] or a DataFrame of them",
        "text": "give a DataFrame of one string column, or a list of strings",
        "image": "give a DataFrame of one column of image bytes (or paths)",
    }[model.kind]


def load_embedder(export_dir: str) -> Callable[[Any], np.ndarray]:
    """The pyfunc model's body from its artifact (an export directory, as `minesearch export`
    writes it). Referenced by name from the pickled model: keep its module path stable."""
    return Embedder(load_exported(export_dir))


def example_input(raw: RawInputs, kind: str, column: str | None) -> np.ndarray | pd.DataFrame:
    """A few rows of the source as `predict` takes them: the logged input example, from which
    MLflow infers the signature."""
    if kind == "tensor":
        x = np.asarray(raw, dtype=np.float32)
        return x.reshape(len(x), -1)
    return pd.DataFrame({column or kind: list(raw)})
