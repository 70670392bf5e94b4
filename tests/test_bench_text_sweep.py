"""bench/text_sweep.py: its stages pick what they say from earlier results, and a run still trains
and scores with minesearch's own steps (a tiny slice of package_topics, so it cannot rot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_bench

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "search_spaces" / "data" / "package_topics.parquet"


def fake_run(loss: str, lr: float, val: float, split: int = 0) -> dict[str, Any]:
    epochs = [{"epoch": 0, "val.mean_average_precision_at_r": 0.3}]
    epochs.append({"epoch": 1, "val.mean_average_precision_at_r": val})
    return {"split": split, "loss": loss, "head": "none", "encoder_lr": lr, "head_lr": None,
            "epochs": epochs}  # fmt: skip


def test_stages_follow_the_best_losses_and_rates_of_split_0() -> None:
    sweep = load_bench("text_sweep")
    losses = list(sweep.LOSSES)
    results = [
        fake_run(loss, lr, 0.3 + 0.01 * i + (0.05 if lr == 5e-5 else 0.04 if lr == 1e-5 else 0))
        for i, loss in enumerate(losses)
        for lr in sweep.ENCODER_LRS
    ]
    results.append(fake_run(losses[0], 2e-5, 0.99, split=1))  # another split: not counted
    heads = sweep.stage_heads(results, full=False)
    assert {(r["loss"], r["encoder_lr"]) for r in heads} == {
        (loss, lr) for loss in losses[-2:] for lr in (1e-5, 5e-5)
    }
    assert {r["head_lr"] for r in heads} == set(sweep.HEAD_LRS) and len(heads) == 8
    splits = sweep.stage_splits(results, full=False)
    assert {(r["split"], r["encoder_lr"]) for r in splits} == {(1, 5e-5), (1, 1e-4)}
    full = sweep.stage_grid(results, full=True)
    assert len({sweep.run_key(r) for r in full}) == 2 * len(losses) * len(sweep.ENCODER_LRS)
    assert sweep.stage_splits(results, full=True) == []


def test_a_rate_tried_with_fewer_losses_is_compared_on_the_losses_it_has() -> None:
    sweep = load_bench("text_sweep")
    *_, strong = losses = list(sweep.LOSSES)
    weak = losses[0]
    results = [fake_run(weak, 2e-5, 0.30), fake_run(strong, 2e-5, 0.40)]
    results.append(fake_run(strong, 1e-4, 0.38))  # only the strong loss has run at 1e-4 yet
    assert sweep.best(results, "encoder_lr", 1) == [2e-5]
    assert sweep.best(results, "loss", 1) == [strong]


def test_a_run_trains_and_scores_every_epoch(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    table = pq.read_table(DATA).to_pandas()
    tiny = table[table.label.isin(sorted(table.label.unique())[:20])].groupby("label").head(5)
    path = tmp_path / "tiny.parquet"
    pq.write_table(pa.Table.from_pandas(tiny, preserve_index=False), path)
    sweep = load_bench("text_sweep")
    run = {"split": 0, "loss": "MultiSimilarity", "head": "linear", "encoder_lr": 2e-5}
    result = sweep.run_one({**run, "head_lr": 1e-3}, path)
    epochs = result["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(sweep.EPOCHS + 1))
    for e in epochs:
        for part in ("val", "test"):
            assert 0.0 < e[f"{part}.mean_average_precision_at_r"] <= 1.0
    assert "head=linear" in result["recipe"]
    text = sweep.summary([result])
    assert "linear@0.001" in text and "MultiSimilarity" in text
