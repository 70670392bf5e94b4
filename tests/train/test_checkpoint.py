"""`TrainingState`: the round trip through its file, and checkpoints written before a field
existed still load (a resumed search reads its old trials' checkpoints)."""

from __future__ import annotations

from pathlib import Path

import torch

from minesearch.train import CHECKPOINT_FILE, TrainingState

WEIGHTS = {"w": torch.arange(4.0)}


def test_every_field_comes_back(tmp_path: Path) -> None:
    fold1 = {"model": {"w": torch.ones(4)}, "loss": {}, "optimizer": {}, "scaler": {}}
    state = TrainingState(
        epoch=3,
        model=WEIGHTS,
        loss={"proxies": torch.zeros(2, 4)},
        optimizer={"state": {}, "param_groups": []},
        selection={"epoch": 2, "scores": {"precision_at_1": 0.5}, "start": 0.1, "trained": 0.5},
        scaler={"scale": 1024.0, "_growth_tracker": 3},
        folds=(fold1,),
    )
    state.save(tmp_path)
    back = TrainingState.load(tmp_path)
    assert back.epoch == 3 and back.selection == state.selection and back.scaler == state.scaler
    assert torch.equal(back.model["w"], WEIGHTS["w"])
    assert torch.equal(back.loss["proxies"], state.loss["proxies"])
    assert back.fold_count == 2
    assert torch.equal(back.fold(1)["model"]["w"], torch.ones(4))
    assert back.fold(0)["scaler"] == state.scaler and back.fold(0)["model"] is back.model


def test_a_checkpoint_from_before_the_scaler_and_the_folds_loads(tmp_path: Path) -> None:
    old = {"epoch": 1, "model": WEIGHTS, "loss": {}, "optimizer": {}, "selection": {}}
    torch.save(old, tmp_path / CHECKPOINT_FILE)
    back = TrainingState.load(tmp_path)
    assert back.scaler == {} and back.folds == () and back.fold_count == 1
