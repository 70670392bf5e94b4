"""export: a trial's model as a file that embeds outside minesearch, and `minesearch embed`.

`export_run` finds the trial a reference names in MLflow, rebuilds its network from the space and
its checkpoint, and writes TorchScript or ONNX with a JSON of its preprocessing (`_formats`),
logged back to the trial's child run; `embed_parquet` runs an export over a Parquet file. After a
search, the TorchScript export also becomes the run's MLflow Model: `load_embedder` is its body
(`_pyfunc`), `minesearch.tracking.log_model` logs and registers it.

Runs in the CLI (and after a search, for its best trial). Imports torch and the rooms below it;
MLflow only through `minesearch.tracking`.
"""

from minesearch.export._embed_parquet import (
    DEFAULT_INPUT_COLUMN,
    EMBEDDING_COLUMN,
    EmbedError,
    embed_parquet,
)
from minesearch.export._formats import (
    FORMATS,
    MODEL_FILES,
    PREPROCESS_FILE,
    ExportedModel,
    ExportError,
    ExportFormat,
    export_network,
    load_exported,
)
from minesearch.export._pyfunc import Embedder, example_input, load_embedder
from minesearch.export._runs import EXAMPLE_ROWS, Exported, export_run

__all__ = [
    "DEFAULT_INPUT_COLUMN",
    "EMBEDDING_COLUMN",
    "EXAMPLE_ROWS",
    "FORMATS",
    "MODEL_FILES",
    "PREPROCESS_FILE",
    "EmbedError",
    "Embedder",
    "ExportError",
    "ExportFormat",
    "Exported",
    "ExportedModel",
    "embed_parquet",
    "example_input",
    "export_network",
    "export_run",
    "load_embedder",
    "load_exported",
]
