"""A network scored on a split, outside training: the pretrained reference, and the chosen
trials' checkpoints on the test split.

The search selects on the validation split, so its best score is optimistically biased (it won a
contest on that split). The class-disjoint test split is touched only after selection, for the
chosen trials and the pretrained reference, so a number reported as "test" was never used to
choose anything. The driver runs `score_network` as a Ray task: on a cluster the data and the
checkpoints are where the workers are, not necessarily where the driver is.
"""

from __future__ import annotations

import torch

from minesearch.config import SpaceSpec
from minesearch.config.vocab import HeadName, SplitPart
from minesearch.data import Parts, Preprocess, load_folds, load_parts
from minesearch.models import Network, build_network, reference_network
from minesearch.train._checkpoint import load_from_storage
from minesearch.train._embed_rows import embed_rows
from minesearch.train._evaluation import retrieval_scores
from minesearch.train._folds import fold_scores
from minesearch.train._precision import FP32, Precision


def split_scores(
    parts: Parts,
    part: SplitPart,
    model: torch.nn.Module,
    preprocess: Preprocess,
    device: torch.device,
    precision: Precision = FP32,
) -> dict[str, float]:
    """Retrieval within one split, scored exactly as a trial's validation epoch is (embedded in
    `precision`, scored in fp32)."""
    embeddings = embed_rows(model, preprocess, parts.source, parts.rows(part), device, precision)
    return retrieval_scores(embeddings, parts.labels(part)).as_metrics()


def load_network(
    spec: SpaceSpec,
    parts: Parts,
    checkpoint_path: str,
    storage_path: str,
    head: HeadName | None = None,
) -> Network:
    """The network of a trial's checkpoint (its architecture: the space and the trial's head)."""
    state = load_from_storage(checkpoint_path, storage_path)
    network = build_network(spec, parts.source, head)
    network.model.load_state_dict(state.model)
    return network


def score_network(
    spec: SpaceSpec,
    part: SplitPart,
    checkpoint_path: str | None = None,
    storage_path: str = "",
    head: HeadName | None = None,
) -> dict[str, float]:
    """Scores on `part` of a trial's checkpoint, or of the pretrained model itself (no
    checkpoint: the backbone's own embedding, no head), on the CPU, in `train.precision` as it
    resolves there (auto: fp32). The pretrained model's val score with `search.folds` K > 1 is
    the mean over the K folds' val classes, as the trials' scores are (`fold_scores`)."""
    cpu = torch.device("cpu")
    precision = Precision.resolve(spec.train.precision, cpu)
    folds = spec.search.folds or 1
    if checkpoint_path is None and part == "val" and folds > 1:
        every = load_folds(spec, folds)
        network = reference_network(spec, every[0].source)
        model, preprocess = network.model, network.preprocess
        per_fold = [split_scores(p, part, model, preprocess, cpu, precision) for p in every]
        return fold_scores(per_fold)
    parts = load_parts(spec)
    if checkpoint_path is None:
        network = reference_network(spec, parts.source)
    else:
        network = load_network(spec, parts, checkpoint_path, storage_path, head)
    return split_scores(parts, part, network.model, network.preprocess, cpu, precision)
