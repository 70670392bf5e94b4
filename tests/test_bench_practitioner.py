"""bench/practitioner.py's plain arm still runs against the current code, and starts where
minesearch's pretrained reference is: the same pooling and normalisation, so the same scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import load_bench

from minesearch.config import parse_spec
from minesearch.data import load_parts
from minesearch.models import reference_network
from minesearch.train import embed_rows, retrieval_scores

pytest.importorskip("transformers")
REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "search_spaces" / "data" / "package_topics.parquet"
MAP = "mean_average_precision_at_r"


def tiny_space(tmp_path: Path) -> dict[str, object]:
    """Six sections of package_topics, six texts each: two classes per part."""
    table = pq.read_table(DATA).to_pandas()
    labels = sorted(table.label.unique())[:6]
    tiny = table[table.label.isin(labels)].groupby("label").head(6)
    path = tmp_path / "tiny.parquet"
    pq.write_table(pa.Table.from_pandas(tiny, preserve_index=False), path)
    return {
        "name": "tiny-text",
        "data": {
            "source": "parquet",
            "path": str(path),
            "label_column": "label",
            "input_column": "text",
            "input_type": "text",
            "split": {"val": 0.34, "test": 0.34, "seed": 0},
            "cache_dir": str(tmp_path / "cache"),
        },
        "model": {"backbone": "minilm", "head": "none", "max_length": 8},
        "train": {"epochs": 1, "batch": {"classes": 2, "per_class": 3}},
    }


def test_plain_arm_starts_at_the_pretrained_reference_and_trains(tmp_path: Path) -> None:
    spec = parse_spec(tiny_space(tmp_path))
    out = load_bench("practitioner").plain_finetune(spec, epochs=1, log=lambda _: None)
    epochs = out["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1]
    parts = load_parts(spec)
    network = reference_network(spec, parts.source)
    for part in ("val", "test"):
        rows = parts.rows(part)
        emb = embed_rows(network.model, network.preprocess, parts.source, rows, torch.device("cpu"))
        expected = retrieval_scores(emb, parts.labels(part)).as_metrics()[MAP]
        assert epochs[0][part] == pytest.approx(expected, abs=1e-9)
    assert np.isfinite(epochs[1]["loss"]) and epochs[1]["loss"] > 0
    assert out["steps"] == 2 and out["wall_s"] > 0  # 12 train texts / (2 classes x 3)


def test_plain_arm_runs_in_a_process_of_its_own_timed_launch_to_exit(tmp_path: Path) -> None:
    """As the search's wall counts its process's start, plain's counts its own: a child process
    whose wall (launch to exit) includes the in-process time it reports."""
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(tiny_space(tmp_path)))
    out = load_bench("practitioner").plain_process(space, epochs=1, log=lambda _: None)
    assert [e["epoch"] for e in out["epochs"]] == [0, 1] and out["steps"] == 2
    assert out["process_wall_s"] > out["wall_s"] > 0


def test_plain_arm_refuses_another_backbone(tmp_path: Path) -> None:
    raw = tiny_space(tmp_path)
    raw["model"] = {"backbone": "hf:/nowhere"}
    spec = parse_spec(raw)
    with pytest.raises(SystemExit, match=r"model\.backbone"):
        load_bench("practitioner").plain_finetune(spec, epochs=1)


def test_the_report_states_the_gap_and_the_wall_ratio() -> None:
    bench = load_bench("practitioner")
    row = {"val": 0.5, "test": 0.4, "val_p1": 0.6, "test_p1": 0.5, "train_s": 1.0, "loss": 1.0}
    plain = {
        "wall_s": 100.0,
        "cpu_s": 150.0,
        "steps": 3,
        "epochs": [{**row, "epoch": 0}, {**row, "epoch": 1}],
    }
    search = {"wall_s": 500.0, "trials": 6, "chosen": "NTXent", "chosen_epoch": 2}
    search |= {"chosen_val": 0.55, "chosen_test": 0.45, "control_val": None}
    search |= {"control_test": None, "pretrained_val": 0.5, "pretrained_test": 0.4}
    text = bench.report(Path("s.yaml"), plain, search)
    assert "search test MAP@R - plain's (epoch 1): +0.0500" in text
    assert "wall(search) / wall(plain): 5.00x" in text and "NOT met" in text
    assert "the verdict keeps" not in text  # no verdict read back: the val-chosen trial
    # timed as a process (launch to exit), plain's wall is that, and the old ratio is beside it
    text = bench.report(Path("s.yaml"), plain | {"process_wall_s": 125.0}, search)
    assert "plain fine-tune: 125 s wall (100 s from loading the encoder, 150 CPU s)" in text
    assert "wall(search) / wall(plain): 4.00x (5.00x its time from loading the encoder)" in text
    assert "wall <= 4x): met" in text


def test_the_report_judges_the_model_the_verdict_keeps() -> None:
    """The search's answer is what its verdict keeps: here the pretrained model, whose test
    score (0.43) beats plain's last epoch (0.40) while the val-chosen trial's (0.39) does not."""
    bench = load_bench("practitioner")
    row = {"val": 0.5, "test": 0.4, "val_p1": 0.6, "test_p1": 0.5, "train_s": 1.0, "loss": 1.0}
    plain = {"wall_s": 100.0, "cpu_s": 150.0, "steps": 3, "epochs": [{**row, "epoch": 3}]}
    search = {"wall_s": 300.0, "trials": 6, "chosen": "NTXent", "chosen_epoch": 2}
    search |= {"chosen_val": 0.55, "chosen_test": 0.39, "control_val": 0.5}
    search |= {"control_test": 0.38, "pretrained_val": 0.5, "pretrained_test": 0.43}
    search |= {"kept": "pretrained"}
    text = bench.report(Path("s.yaml"), plain, search)
    assert "search test MAP@R - plain's (epoch 3): -0.0100" in text
    assert "the verdict keeps the pretrained: its test MAP@R - plain's: +0.0300" in text
    assert "(the search's answer beats plain on test, wall <= 4x): met" in text


def test_phases_split_the_wall_time_at_the_runs_ends_and_count_their_epochs() -> None:
    """Two trials (one pruned at epoch 1), the test estimate's two retrains: each phase runs
    from the end of the one before, so the phases add up to the wall time."""
    bench = load_bench("practitioner")
    run = bench.RunTime
    runs = [
        run("parent", 0, 110.0, 990.0),
        run("trial", 2, 130.0, 200.0),  # the control, proposed first
        run("trial", 1, 200.0, 240.0),
        run("confirm", 2, 250.0, 320.0),
        run("confirm", 1, 320.0, 350.0),
    ]
    spent = bench.phases(100.0, 400.0, runs)
    assert spent == {
        "start": 10.0,
        "reference": 20.0,
        "trials": 110.0,
        "trial_epochs": 3,
        "test_estimate": 110.0,
        "test_estimate_epochs": 3,
        "after": 50.0,
    }
    assert sum(v for k, v in spent.items() if not k.endswith("epochs")) == 300.0
    row = {"val": 0.5, "test": 0.4, "test_p1": 0.5, "loss": 1.0}
    plain = {"wall_s": 50.0, "epochs": [{**row, "epoch": 0, "train_s": 0.0}]}
    plain["epochs"] += [{**row, "epoch": e, "train_s": s} for e, s in ((1, 9.0), (2, 11.0))]
    lines = bench.time_lines(spent, plain)
    assert "trials 110 s (3 epochs) · test estimate 110 s (3 epochs)" in lines[0]
    assert lines[1].startswith("  its 6 epochs at plain's 10.0 s an epoch: 60 s, 1.20x plain's")


def test_phases_without_a_test_estimate_end_the_search_at_its_last_trial() -> None:
    bench = load_bench("practitioner")
    runs = [bench.RunTime("parent", 0, 1.0, 9.0), bench.RunTime("trial", 1, 2.0, 5.0)]
    spent = bench.phases(0.0, 10.0, runs)
    assert (spent["test_estimate"], spent["test_estimate_epochs"], spent["after"]) == (0.0, 0, 5.0)
    assert bench.time_lines(spent, None)[1:] == []  # no plain arm: no pace to price epochs at
