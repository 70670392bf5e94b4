"""What a search trained on, in a few numbers: the source, a digest, and each part's classes.

MLflow shows it as the runs' datasets (`minesearch.tracking` turns it into dataset inputs): a
reader sees which data, which split and how many rows per class each trial had, and two searches
with the same digest had the same labels and the same split of the same files.

The digest is over what is in memory without reading the inputs again: the labels and class
names, the rows of each part, the space's data settings and, for Parquet, the files' identity
(path, size, modification time: the key of the checked cache). It is not a hash of every image or
text, which would mean reading the whole data set once more per search.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from minesearch.config import SpaceSpec
from minesearch.config.vocab import SPLIT_PARTS
from minesearch.data._open import Parts

DIGEST_CHARS = 32  # MLflow keeps at most 36


@dataclass(frozen=True)
class PartSummary:
    """One part of the split: its rows, and rows per class (by class name where there is one)."""

    part: str  # train, val or test
    rows: int
    class_counts: dict[str, int]
    digest: str  # of the source's digest and this part's rows


@dataclass(frozen=True)
class DataSummary:
    name: str  # the source's name: digits, text_topics, a file or folder name
    uri: str  # where it is read from: a path, or minesearch:<name> for a shipped data set
    kind: str  # tensor, image or text
    rows: int
    classes: int
    digest: str
    parts: tuple[PartSummary, ...]  # non-empty parts only


def summarize(spec: SpaceSpec, parts: Parts) -> DataSummary:
    source = parts.source
    labels = np.asarray(source.labels)
    names = source.class_names
    settings = spec.data.model_dump(mode="json", exclude={"cache_dir"})
    identity = getattr(source, "fingerprint", "")
    h = _hash(json.dumps([settings, identity, names], sort_keys=True).encode(), labels.tobytes())
    summaries = []
    for part in SPLIT_PARTS:
        rows = parts.rows(part)
        if len(rows) == 0:
            continue
        classes, counts = np.unique(labels[rows], return_counts=True)
        by_class = {
            (names[int(c)] if names else str(int(c))): int(n)
            for c, n in zip(classes, counts, strict=True)
        }
        digest = _hash(h.encode(), part.encode(), np.asarray(rows, np.int64).tobytes())
        summaries.append(PartSummary(part, len(rows), by_class, digest))
    uri = spec.data.path or f"minesearch:{spec.data.source}"
    return DataSummary(
        source.name, uri, source.kind, len(labels), len(np.unique(labels)), h, tuple(summaries)
    )


def _hash(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "little"))
        h.update(chunk)
    return h.hexdigest()[:DIGEST_CHARS]
