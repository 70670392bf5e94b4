"""Precomputed sentence embeddings of the shipped text set, as a user with vectors would have them.

    python scripts/make_topic_vectors.py [--out search_spaces/data/text_topics_minilm.parquet]

Embeds `text_topics` (560 sentences, 40 intents; minesearch/assets) with the shipped
all-MiniLM-L6-v2 exactly as sentence-transformers does (mean pooling over the attention mask,
then L2 normalisation: `minesearch.models.reference_network`), and writes `label` and
`features` (384 float32 per row) to Parquet. `search_spaces/vectors.yaml` searches on it; any
other file of the same two columns works the same. Needs the text extra (transformers).
"""

from __future__ import annotations

import argparse
from pathlib import Path

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


def main(out: Path) -> None:
    spec = parse_spec(
        {
            "name": "vectors",
            "data": {"source": "text_topics"},
            "model": {"backbone": "minilm", "max_length": 64},
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
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    main(parser.parse_args().out)
