"""The worker loop trains in `train.precision` and the recipe as resolved against the space.

A tiny training (build_state + train_epoch, scored as a worker's report scores), in process, no
Ray, on clustered vectors with the identity-started head: the pretrained-start setting, where a
recipe's training is stable. Why MAP_AT_R_TOLERANCE: bf16 rounds each forward's embeddings by
~2^-8 (tests/train/test_precision.py); over three epochs that moved this training's MAP@R by at
most 0.0045 (3 seeds x ContrastiveLoss+BatchHardMiner, MultiSimilarityLoss, NTXentLoss), while
training moved it by 0.02 to 0.07. A from-scratch convnet on digits is no such yardstick: there
bf16 and fp32 part ways within two epochs, as two seeds do (MAP@R 0.46 to 0.75 either way).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from recording_session import RecordingSession

from minesearch.config import SpaceSpec, parse_spec
from minesearch.data import load_folds
from minesearch.recipe import Recipe, TrialConfig
from minesearch.train import TrainingState, build_state, run_in_process, split_scores, train_epoch
from minesearch.train._loop import fresh_process

EPOCHS = 3
MAP_AT_R = "mean_average_precision_at_r"
MAP_AT_R_TOLERANCE = 0.01
RECIPE = Recipe("ContrastiveLoss", "BatchHardMiner", {}, {}, lr=3e-3)


@pytest.fixture(autouse=True)
def threads() -> Iterator[None]:
    kept = torch.get_num_threads()
    yield
    torch.set_num_threads(kept)


def digits(optimizer: str = "adam", **train: Any) -> SpaceSpec:
    return parse_spec(
        {
            "name": "precision",
            "data": {"source": "digits", "split": {"val": 0.3, "test": 0.0, "seed": 0}},
            "model": {"backbone": "convnet", "embedding_dim": 16, "hidden_dim": 32},
            "train": {
                "epochs": EPOCHS,
                "batch": {"classes": 4, "per_class": 6},
                "optimizer": optimizer,
                **train,
            },
        }
    )


@pytest.fixture(scope="module")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 classes x 24 noisy copies of a random centre, 32 wide."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 32))
    labels = np.repeat(np.arange(20), 24)
    rows = (centres[labels] + 1.6 * rng.standard_normal((len(labels), 32))).astype(np.float32)
    path = tmp_path_factory.mktemp("vectors") / "vectors.parquet"
    pq.write_table(pa.table({"label": labels, "x": list(rows)}), path)
    return path


def on_vectors(path: Path, precision: str) -> SpaceSpec:
    return parse_spec(
        {
            "name": "precision",
            "data": {
                "source": "parquet",
                "path": str(path),
                "label_column": "label",
                "input_column": "x",
                "split": {"val": 0.4, "test": 0.0, "seed": 0},
            },
            "model": {},  # the vectors as they are, the identity-started linear head
            "train": {
                "epochs": EPOCHS,
                "batch": {"classes": 4, "per_class": 6},
                "precision": precision,
            },
        }
    )


def trained(spec: SpaceSpec, recipe: Recipe) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Validation scores after EPOCHS epochs, embedded in the trial's precision, and each
    epoch's training statistics."""
    fresh_process(spec.train.seed, 1)
    state = build_state(spec, recipe)
    before = split_scores(state.parts, "val", state.model, state.preprocess, state.device)
    stats = [train_epoch(state, epoch) for epoch in range(1, EPOCHS + 1)]
    scores = split_scores(
        state.parts, "val", state.model, state.preprocess, state.device, state.precision
    )
    return {"before": before[MAP_AT_R], **scores}, stats


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe("ContrastiveLoss", "BatchHardMiner", {}, {}, lr=3e-3),
        Recipe("MultiSimilarityLoss", lr=3e-3),
    ],
    ids=["contrastive-batchhard", "multisimilarity"],
)
def test_bf16_training_scores_as_fp32_does(vectors: Path, recipe: Recipe) -> None:
    exact, _ = trained(on_vectors(vectors, "fp32"), recipe)
    rounded, _ = trained(on_vectors(vectors, "bf16"), recipe)
    assert (
        abs(exact[MAP_AT_R] - exact["before"]) > 0.02
    )  # it trained: the comparison means something
    assert rounded[MAP_AT_R] == pytest.approx(exact[MAP_AT_R], abs=MAP_AT_R_TOLERANCE)
    assert rounded[MAP_AT_R] != exact[MAP_AT_R]  # and bf16 did round something


def test_fp16_trains_with_its_scaler_and_stays_finite(vectors: Path) -> None:
    """CPU autocast runs fp16 in torch 2.13 (tests/train/test_precision.py), so the scaler is a
    real GradScaler here: its scale is reported, and a skipped step is counted, not fatal."""
    scores, stats = trained(on_vectors(vectors, "fp16"), RECIPE)
    assert all(torch.isfinite(torch.tensor(v)) for v in scores.values())
    assert all(torch.isfinite(torch.tensor(v)) for s in stats for v in s.values())
    assert all(s["loss_scale"] > 0 and s["skipped_steps"] >= 0 for s in stats)
    assert abs(scores[MAP_AT_R] - scores["before"]) > 0.02


def test_fp32_reports_no_scaler_statistics(vectors: Path) -> None:
    _, stats = trained(on_vectors(vectors, "fp32"), RECIPE)
    assert "loss_scale" not in stats[0] and "skipped_steps" not in stats[0]


def test_the_fp16_scale_goes_into_the_checkpoint_and_comes_back(
    tmp_path: Path, vectors: Path
) -> None:
    spec = on_vectors(vectors, "fp16")
    first = RecordingSession(tmp_path / "first")
    run_in_process({"spec": spec, "trial": TrialConfig(RECIPE)}, first, load_folds)
    saved = TrainingState.load(first.checkpoints[1])
    assert saved.scaler["scale"] > 0  # GradScaler's own state_dict
    resumed = RecordingSession(tmp_path / "resumed", resume_from=first.checkpoints[1])
    run_in_process({"spec": spec, "trial": TrialConfig(RECIPE)}, resumed, load_folds)
    assert resumed.reports[0]["train_loss"] == pytest.approx(first.reports[2]["train_loss"])


@pytest.mark.parametrize(("space", "recipe"), [("adam", "adamw"), ("adamw", "adam")])
def test_the_recipes_optimizer_is_the_one_built(space: str, recipe: str) -> None:
    """The control recipe sets `optimizer: adamw`; a space's other optimiser must not win."""
    state = build_state(digits(optimizer=space), Recipe("ContrastiveLoss", optimizer=recipe))  # type: ignore[arg-type]
    built = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[recipe]
    assert type(state.optimizer) is built


def test_the_recipes_weight_decay_and_warm_up_win_over_the_spaces() -> None:
    spec = digits(weight_decay=0.0, warmup_epochs=0.0)
    state = build_state(spec, Recipe("ContrastiveLoss", weight_decay=0.25, warmup_epochs=1.0))
    assert {g["weight_decay"] for g in state.optimizer.param_groups} == {0.25}
    assert state.warmup_steps == len(state.batches)
    plain = build_state(spec, Recipe("ContrastiveLoss"))
    assert {g["weight_decay"] for g in plain.optimizer.param_groups} == {0.0}
    assert plain.warmup_steps == 0
