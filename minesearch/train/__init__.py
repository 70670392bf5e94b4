"""train: everything that runs inside a Ray Train worker, and the scoring of a trained checkpoint.

The worker loop has the recipe shape: setup -> evaluate epoch 0 -> (train epoch -> evaluate ->
report) per epoch (`_loop`). A step mines and computes the loss on the global batch through PML's
distributed wrappers (`_step`) from class-balanced, DDP-aware batches (`_batches`), with mining
telemetry (`_telemetry`); retrieval is scored on held-out classes (`_evaluation`). `_checkpoint`
alone writes and reads a trial's checkpoint; `_scoring` loads one to score the test split (the
driver runs it as a Ray task).

Runs in the Ray Train workers and the driver's scoring tasks. Imports torch, PML, ray.train and
the rooms below it (config, recipe, data, models); never MLflow, Optuna or ray.tune, which a
worker has no use for (tests/test_architecture.py checks it).
"""

from minesearch.train._batches import ClassBalancedBatches
from minesearch.train._checkpoint import (
    CHECKPOINT_FILE,
    TrainingState,
    has_checkpoint_file,
    load_from_storage,
)
from minesearch.train._embed import EVAL_CHUNK, embed_rows, to_device
from minesearch.train._evaluation import DEFAULT_KS, RetrievalScores, retrieval_scores
from minesearch.train._loop import (
    WorkerState,
    build_state,
    train_epoch,
    train_loop_per_worker,
    worker_config,
)
from minesearch.train._scoring import load_network, score_network, split_scores
from minesearch.train._selection import CHECKPOINT_RANK, Selected
from minesearch.train._step import StepOutcome, for_world, loss_and_grads

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_RANK",
    "DEFAULT_KS",
    "EVAL_CHUNK",
    "ClassBalancedBatches",
    "RetrievalScores",
    "Selected",
    "StepOutcome",
    "TrainingState",
    "WorkerState",
    "build_state",
    "embed_rows",
    "for_world",
    "has_checkpoint_file",
    "load_from_storage",
    "load_network",
    "loss_and_grads",
    "retrieval_scores",
    "score_network",
    "split_scores",
    "to_device",
    "train_epoch",
    "train_loop_per_worker",
    "worker_config",
]
