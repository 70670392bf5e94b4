"""A process keeps the untrained network's val scores: a later trial whose epoch-0 network is the
same (vectors through the identity-started head) reports them without evaluating, and the same
as if it had evaluated; a head drawn from the seed is evaluated every time."""

from __future__ import annotations

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
from minesearch.train import _loop, run_in_process, worker_config
from minesearch.train._untrained import forget_untrained, weights_digest

# what differs between two runs of the same recipe by design: clocks, memory, the machine
UNSTABLE = ("_s", "_share", "memory.", "system/", "cost.", "samples_per_s")


def vector_space(tmp_path: Path, head: str, folds: int | None = None) -> SpaceSpec:
    rng = np.random.default_rng(0)
    classes, per_class, dim = 8, 8, 12
    centers = rng.standard_normal((classes, dim))
    rows = np.repeat(centers, per_class, axis=0) + 0.8 * rng.standard_normal(
        (classes * per_class, dim)
    )
    path = tmp_path / "vectors.parquet"
    labels = np.repeat(np.arange(classes), per_class)
    pq.write_table(pa.table({"label": labels, "features": list(rows)}), path)
    return parse_spec(
        {
            "name": "untrained",
            "data": {"source": "parquet", "path": str(path), "split": {"val": 0.5, "test": 0.0}},
            "model": {"head": head},
            "train": {"epochs": 1, "batch": {"classes": 2, "per_class": 4}},
            "search": {"folds": folds},
        }
    )


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per fold evaluation the loop runs."""
    calls: list[int] = []
    evaluate = _loop.evaluate

    def counted(state: Any) -> Any:
        calls.append(1)
        return evaluate(state)

    monkeypatch.setattr(_loop, "evaluate", counted)
    return calls


def trial(spec: SpaceSpec, root: Path, lr: float, seed: int) -> list[dict[str, float]]:
    recipe = Recipe("ContrastiveLoss", "none", {}, {}, lr=lr)
    session = RecordingSession(root)
    run_in_process(worker_config(spec, TrialConfig(recipe, seed=seed)), session, load_folds)
    return [
        {k: v for k, v in r.items() if not any(part in k for part in UNSTABLE)}
        for r in session.reports
    ]


def test_a_later_trial_reuses_the_identical_untrained_networks_scores(
    tmp_path: Path, evaluations: list[int]
) -> None:
    spec = vector_space(tmp_path, "linear")  # identity-started: epoch 0 is the vectors
    first = trial(spec, tmp_path / "a", 1e-2, seed=0)
    assert len(evaluations) == 2  # epochs 0 and 1
    second = trial(spec, tmp_path / "b", 3e-2, seed=5)  # another recipe and seed
    assert len(evaluations) == 3  # epoch 1 only
    assert second[0] == pytest.approx(first[0])  # the same untrained network
    forget_untrained()
    evaluated = trial(spec, tmp_path / "c", 3e-2, seed=5)
    assert len(evaluations) == 5
    # skipping the evaluation changes nothing the trial goes on to do
    assert second == pytest.approx(evaluated)


def test_every_fold_keeps_its_own_scores(tmp_path: Path, evaluations: list[int]) -> None:
    spec = vector_space(tmp_path, "linear", folds=2)
    first = trial(spec, tmp_path / "a", 1e-2, seed=0)
    assert len(evaluations) == 4  # 2 folds x epochs 0 and 1
    second = trial(spec, tmp_path / "b", 1e-2, seed=1)
    assert len(evaluations) == 6
    assert second[0] == pytest.approx(first[0])


def test_the_same_network_on_other_val_rows_is_evaluated(
    tmp_path: Path, evaluations: list[int]
) -> None:
    """The same space, seed and network, scored on another fold's val classes (as
    tests/train/test_folds_lockstep.py trains each fold alone)."""
    spec = vector_space(tmp_path, "linear")
    recipe = Recipe("ContrastiveLoss", "none", {}, {}, lr=1e-2)
    scores = []
    for fold in (0, 1):

        def this_fold(spec: SpaceSpec, folds: int, fold: int = fold) -> list[Any]:
            return [load_folds(spec, 2)[fold]]

        session = RecordingSession(tmp_path / str(fold))
        run_in_process(worker_config(spec, TrialConfig(recipe)), session, this_fold)
        scores.append(session.reports[0]["mean_average_precision_at_r"])
    assert len(evaluations) == 4
    assert scores[0] != scores[1]


def test_a_head_drawn_from_the_seed_is_evaluated_every_time(
    tmp_path: Path, evaluations: list[int]
) -> None:
    spec = vector_space(tmp_path, "mlp")
    trial(spec, tmp_path / "a", 1e-2, seed=0)
    trial(spec, tmp_path / "b", 1e-2, seed=1)
    assert len(evaluations) == 4


def test_the_digest_sees_every_weight_and_its_name() -> None:
    torch.manual_seed(0)
    linear, norm = torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)
    model = torch.nn.Sequential(linear, norm)
    same_linear, same_norm = torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)
    same = torch.nn.Sequential(same_linear, same_norm)
    same.load_state_dict(model.state_dict())
    assert weights_digest(model) == weights_digest(same)
    with torch.no_grad():  # one weight, one float step up
        same_linear.weight[1, 2] = torch.nextafter(same_linear.weight[1, 2], torch.tensor(2.0))
    assert weights_digest(model) != weights_digest(same)
    same.load_state_dict(model.state_dict())
    assert same_norm.running_mean is not None
    same_norm.running_mean += 1  # a buffer
    assert weights_digest(model) != weights_digest(same)
    renamed = torch.nn.Sequential()
    renamed.add_module("first", torch.nn.Linear(4, 3))
    renamed.add_module("1", torch.nn.BatchNorm1d(3))
    values = model.state_dict().values()
    renamed.load_state_dict(dict(zip(renamed.state_dict(), values, strict=True)))
    assert weights_digest(model) != weights_digest(renamed)


def test_the_digest_sees_buffers_that_are_not_saved() -> None:
    def model(seed: int) -> torch.nn.Module:
        module = torch.nn.Linear(3, 3)
        torch.nn.init.eye_(module.weight)
        torch.nn.init.zeros_(module.bias)
        noise = torch.randn(3, generator=torch.Generator().manual_seed(seed))
        module.register_buffer("noise", noise, persistent=False)
        return module

    assert weights_digest(model(0)) == weights_digest(model(0))
    assert weights_digest(model(0)) != weights_digest(model(1))


class WithExtraState(torch.nn.Linear):
    def get_extra_state(self) -> Any:
        return {"temperature": 2.0}

    def set_extra_state(self, state: Any) -> None:
        pass


def test_state_the_digest_cannot_see_is_never_kept() -> None:
    assert weights_digest(torch.nn.Sequential(torch.nn.Linear(3, 3), WithExtraState(3, 3))) is None
    sparse = torch.nn.Module()
    sparse.register_buffer("table", torch.eye(3).to_sparse())
    assert weights_digest(sparse) is None


class TwoRanks(RecordingSession):
    world = 2


def test_a_data_parallel_trial_keeps_nothing(tmp_path: Path) -> None:
    """Its evaluation is a collective: a rank that skipped it would leave the others waiting."""
    spec = vector_space(tmp_path, "linear")
    recipe = Recipe("ContrastiveLoss", "none", {}, {}, lr=1e-2)
    state = _loop.build_lockstep(spec, recipe, RecordingSession(tmp_path), load_folds(spec, 1))
    assert _loop.untrained_scores(spec, state, RecordingSession(tmp_path)) is not None
    assert _loop.untrained_scores(spec, state, TwoRanks(tmp_path)) is None
