"""Precomputed sentence embeddings of a labelled text set, as a user with vectors would have them.

    python scripts/make_topic_vectors.py   # text_topics -> search_spaces/data/text_topics_minilm...
    python scripts/make_topic_vectors.py --input search_spaces/data/package_topics.parquet \
        --out search_spaces/data/package_topics_minilm.parquet

Embeds a text set (default `text_topics`: 560 sentences, 40 intents; minesearch/assets; or any
Parquet file of a `label` and a `text` column given as `--input`) with the shipped
all-MiniLM-L6-v2 exactly as sentence-transformers does (mean pooling over the attention mask,
then L2 normalisation: `minesearch.models.reference_network`), and writes `label` and
`features` (384 float32 per row) to Parquet, rows in the input's order. `search_spaces/vectors.yaml`
searches on the default output; any other file of the same two columns works the same. Needs the
text extra (transformers).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from minesearch.config import parse_spec
from minesearch.data import load_parts
from minesearch.models import reference_network
from minesearch.train import embed_rows

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "search_spaces" / "data" / "text_topics_minilm.parquet"
MAX_LENGTH = 64  # tokens: text_minilm.yaml's model.max_length


def data_of(source: Path | None) -> dict[str, Any]:
    """The space's `data` for the shipped text set (None) or a Parquet file of label and text."""
    if source is None:
        return {"source": "text_topics"}
    return {
        "source": "parquet",
        "path": str(source.resolve()),
        "label_column": "label",
        "input_column": "text",
        "input_type": "text",
    }


def main(out: Path, source: Path | None = None) -> None:
    spec = parse_spec(
        {
            "name": "vectors",
            "data": data_of(source),
            "model": {"backbone": "minilm", "max_length": MAX_LENGTH},
        }
    )
    parts = load_parts(spec)
    network = reference_network(spec, parts.source)
    rows = np.arange(len(parts.source))
    vectors = embed_rows(network.model, network.preprocess, parts.source, rows, torch.device("cpu"))
    names = parts.source.class_names
    labels = [names[i] if names else str(i) for i in parts.source.labels]
    flat = pa.array(vectors.numpy().astype(np.float32).reshape(-1))
    table = pa.table(
        {"label": labels, "features": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])}
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    print(f"{len(rows)} vectors of {vectors.shape[1]} dims in {len(set(labels))} classes: {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, help="Parquet of label + text (default text_topics)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    main(args.out, args.input)
