"""train: everything that runs inside a Ray Train worker, and the scoring of a trained checkpoint.

The worker loop has the recipe shape: setup -> evaluate epoch 0 -> (train epoch -> evaluate ->
report) per epoch (`_loop`). A step mines and computes the loss on the global batch through PML's
distributed wrappers (`_step`) from class-balanced, DDP-aware batches (`_batches`), with mining
telemetry (`_telemetry`) tallied per epoch (`_tally`); retrieval is scored on held-out classes
(`_evaluation`); a trial's K class folds train in lockstep (`_folds`); a process keeps the scores
of an untrained network it evaluated (`_untrained`). `_checkpoint`
alone writes and reads a trial's checkpoint; `_score_network` loads one to score the test split (the
driver runs it as a Ray task).

Runs in the Ray Train workers and the driver's scoring tasks. Imports torch, PML, ray.train and
the rooms below it (config, recipe, data, models); never MLflow, Optuna or ray.tune, which a
worker has no use for (tests/test_architecture.py checks it).

The package loads its modules on first use (PEP 562): a Tune trial process only needs
`train_loop_per_worker` and `worker_config` (`_entry`, which import nothing heavy) to hand a trial
to Ray Train, and paid for torch, PML and scipy when this file imported everything; the workers,
which run the loop, still import them.

The loop talks to whatever runs it through a `Session` (`_session`): `TrainSession` in a Ray Train
worker; a single-worker trial runs the loop in its Tune trial actor (`run_in_process`) with a
session over ray.tune, which `minesearch.search` provides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minesearch import lazy_attributes

if TYPE_CHECKING:
    from minesearch.train._batches import ClassBalancedBatches
    from minesearch.train._checkpoint import (
        CHECKPOINT_FILE,
        TrainingState,
        has_checkpoint_file,
        load_from_storage,
    )
    from minesearch.train._embed_rows import EVAL_CHUNK, embed_rows, to_device
    from minesearch.train._entry import run_in_process, train_loop_per_worker, worker_config
    from minesearch.train._evaluation import DEFAULT_KS, RetrievalScores, retrieval_scores
    from minesearch.train._folds import FOLD_PREFIX, fold_metric
    from minesearch.train._loop import WorkerState, build_state, train_epoch
    from minesearch.train._score_network import load_network, score_network, split_scores
    from minesearch.train._selection import CHECKPOINT_RANK, Selected
    from minesearch.train._session import Session, TrainSession, opened
    from minesearch.train._step import StepOutcome, for_world, loss_and_grads

# name -> the module that defines it, imported when the name is first used
_HOME = {
    "ClassBalancedBatches": "minesearch.train._batches",
    "CHECKPOINT_FILE": "minesearch.train._checkpoint",
    "TrainingState": "minesearch.train._checkpoint",
    "has_checkpoint_file": "minesearch.train._checkpoint",
    "load_from_storage": "minesearch.train._checkpoint",
    "EVAL_CHUNK": "minesearch.train._embed_rows",
    "embed_rows": "minesearch.train._embed_rows",
    "to_device": "minesearch.train._embed_rows",
    "run_in_process": "minesearch.train._entry",
    "train_loop_per_worker": "minesearch.train._entry",
    "worker_config": "minesearch.train._entry",
    "DEFAULT_KS": "minesearch.train._evaluation",
    "RetrievalScores": "minesearch.train._evaluation",
    "retrieval_scores": "minesearch.train._evaluation",
    "FOLD_PREFIX": "minesearch.train._folds",
    "fold_metric": "minesearch.train._folds",
    "WorkerState": "minesearch.train._loop",
    "build_state": "minesearch.train._loop",
    "train_epoch": "minesearch.train._loop",
    "load_network": "minesearch.train._score_network",
    "score_network": "minesearch.train._score_network",
    "split_scores": "minesearch.train._score_network",
    "CHECKPOINT_RANK": "minesearch.train._selection",
    "Selected": "minesearch.train._selection",
    "Session": "minesearch.train._session",
    "TrainSession": "minesearch.train._session",
    "opened": "minesearch.train._session",
    "StepOutcome": "minesearch.train._step",
    "for_world": "minesearch.train._step",
    "loss_and_grads": "minesearch.train._step",
}

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_RANK",
    "DEFAULT_KS",
    "EVAL_CHUNK",
    "FOLD_PREFIX",
    "ClassBalancedBatches",
    "RetrievalScores",
    "Selected",
    "Session",
    "StepOutcome",
    "TrainSession",
    "TrainingState",
    "WorkerState",
    "build_state",
    "embed_rows",
    "fold_metric",
    "for_world",
    "has_checkpoint_file",
    "load_from_storage",
    "load_network",
    "loss_and_grads",
    "opened",
    "retrieval_scores",
    "run_in_process",
    "score_network",
    "split_scores",
    "to_device",
    "train_epoch",
    "train_loop_per_worker",
    "worker_config",
]


__getattr__, __dir__ = lazy_attributes(__name__, _HOME)
