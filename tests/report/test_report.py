"""`minesearch report` on a search written straight into a temp SQLite MLflow store (no Ray)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from minesearch import cli
from minesearch.report import (
    FILES,
    Report,
    attach,
    format_leaderboard,
    param_importance,
    read_report,
    write_plots,
)
from minesearch.results import TrialResult
from minesearch.tracking import StoreError, experiment_id
from minesearch.tracking.names import ROLE_TAG, SEARCH_TAG, TRIAL_TAG

MAP = "mean_average_precision_at_r"
EXPERIMENT = "digits"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class FakeTrial:
    trial_id: str
    params: dict[str, str]
    scores: list[float]  # the metric at epochs 0, 1, ...
    status: str = "FINISHED"
    role: str = "trial"
    mining: bool = True

    @property
    def name(self) -> str:
        """Like `Recipe.label()`, which minesearch.tracking makes the run name."""
        loss, miner = self.params["loss"].removesuffix("Loss"), self.params["miner"]
        label = loss if miner == "none" else f"{loss}+{miner}"
        if "miner.type_of_triplets" in self.params:
            label += f"[{self.params['miner.type_of_triplets']}]"
        margins = {self.params.get("loss.margin"), self.params.get("miner.margin")} - {None}
        label += "".join(f" m={m}" for m in sorted(m for m in margins if m))
        prefix = "control: " if self.role == "control" else ""
        return f"{prefix}{label} ({self.trial_id})"


def recipe(loss: str, miner: str, lr: str, **extra: str) -> dict[str, str]:
    return {"loss": loss, "miner": miner, "lr": lr, "workers": "1", "epochs": "3", **extra}


TRIPLET = "TripletMarginLoss"
TM_MINER = "TripletMarginMiner"
TRIALS = [
    FakeTrial(
        "t1",
        recipe(TRIPLET, TM_MINER, "0.001", **{"loss.margin": "0.2", "miner.margin": "0.2"})
        | {"miner.type_of_triplets": "semihard", "margin_mode": "tied"},
        [0.11, 0.30, 0.45, 0.52],
    ),
    FakeTrial(
        "t2",
        recipe(TRIPLET, TM_MINER, "0.003", **{"loss.margin": "0.1", "miner.margin": "0.1"})
        | {"miner.type_of_triplets": "hard", "margin_mode": "tied"},
        [0.10, 0.25, 0.35, 0.40],
    ),
    FakeTrial(
        "t3",
        recipe("ContrastiveLoss", "MultiSimilarityMiner", "0.0003", **{"miner.epsilon": "0.1"})
        | {"margin_mode": "none"},
        [0.10, 0.20, 0.30, 0.38],
    ),
    FakeTrial(
        "t4", recipe("MultiSimilarityLoss", "none", "0.01", margin_mode="none"), [0.1, 0.2, 0.22]
    ),
    FakeTrial(
        "t5",
        recipe(TRIPLET, "BatchHardMiner", "0.001", **{"loss.margin": "0.3"}, margin_mode="default"),
        [0.10, 0.20, 0.28, 0.30],
    ),
    FakeTrial(
        "t6", recipe("ContrastiveLoss", "none", "0.005", margin_mode="none"), [0.1], "FAILED"
    ),
    FakeTrial(
        "t7",
        recipe(TRIPLET, TM_MINER, "0.0001", **{"loss.margin": "0.4", "miner.margin": "0.4"})
        | {"miner.type_of_triplets": "easy", "margin_mode": "tied"},
        [0.10, 0.12],
        "KILLED",
    ),
    FakeTrial(
        "control",
        recipe(TRIPLET, "none", "0.001", **{"loss.margin": "0.05"}, margin_mode="default"),
        [0.10, 0.20, 0.30, 0.35],
        role="control",
    ),
]
RANKED = ["t1", "t2", "t3", "control", "t5", "t4", "t7"]


def make_search(
    uri: str, trials: list[FakeTrial], mode: str = "max", name: str = "quickstart"
) -> str:
    """A parent run and its children, laid out as minesearch.tracking writes them; the parent's
    id."""
    client = MlflowClient(uri)
    experiment = experiment_id(client, EXPERIMENT, uri)
    parent = client.create_run(experiment, run_name=name, tags={SEARCH_TAG: "parent"})
    parent_id = parent.info.run_id
    client.log_batch(parent_id, params=[Param("metric", MAP), Param("mode", mode)])
    for trial in trials:
        tags = {MLFLOW_PARENT_RUN_ID: parent_id, TRIAL_TAG: trial.trial_id, ROLE_TAG: trial.role}
        if trial.status == "KILLED":
            tags["minesearch.stopped"] = "early stop by the scheduler (pruned)"
        run_id = client.create_run(experiment, run_name=trial.name, tags=tags).info.run_id
        client.log_batch(run_id, params=[Param(k, v) for k, v in trial.params.items()])
        now = int(time.time() * 1000)
        for epoch, score in enumerate(trial.scores):
            metrics = {MAP: score, "precision_at_1": score + 0.1, "train_loss": 1.0 / (1 + epoch)}
            metrics["epoch"] = epoch
            if trial.mining:
                hard = 0.5 / (1 + epoch)
                metrics |= {"mining.hard": hard, "mining.semihard": 0.2, "mining.easy": 0.8 - hard}
            client.log_batch(run_id, metrics=[Metric(k, v, now, epoch) for k, v in metrics.items()])
        client.set_terminated(run_id, trial.status)
    client.set_terminated(parent_id, "FINISHED")
    return parent_id


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(tracking URI, parent run id) of the full fake search, shared by the module's tests."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    return uri, make_search(uri, TRIALS)


@pytest.fixture(scope="module")
def report(search: tuple[str, str]) -> Report:
    return read_report(search[0], EXPERIMENT, top=5)


def trial_ids(report: Report) -> list[str]:
    return [row.trial.trial_id for row in report.rows]


def test_leaderboard_ranks_by_the_last_value_with_baseline_and_control_delta(
    report: Report,
) -> None:
    assert trial_ids(report) == RANKED[:5]
    best = report.rows[0]
    assert best.score == pytest.approx(0.52)
    assert best.baseline == pytest.approx(0.11)  # epoch 0
    assert best.delta == pytest.approx(0.52 - 0.35)  # vs the control's last value
    assert best.epochs == 3
    assert best.trial.label == "TripletMargin+TripletMarginMiner[semihard] m=0.2 (t1)"
    assert report.control is not None and report.control.trial_id == "control"
    assert [t.trial_id for t in report.ranked] == RANKED  # failed excluded, pruned kept
    assert (report.count("finished"), report.count("pruned"), report.count("failed")) == (5, 1, 1)
    assert {t.trial_id: t.status for t in report.trials}["t7"] == "pruned"


def test_text_leaderboard_shows_scores_statuses_and_failures(report: Report) -> None:
    text = format_leaderboard(report)
    assert "7 trials: 5 finished, 1 pruned, 1 failed" in text
    lines = text.splitlines()
    first = next(line for line in lines if line.strip().startswith("1 "))
    assert "0.5200" in first and "0.1100" in first and "+0.1700" in first
    assert "finished" in first and "(t1)" in first
    assert "the control ranks 4 of 7 with 0.3500: control: TripletMargin m=0.05 (control)" in text
    assert "parameter importance (fANOVA over finished trials):" in text


def test_mode_min_ranks_ascending(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    make_search(uri, TRIALS[:3], mode="min")
    assert trial_ids(read_report(uri, EXPERIMENT, top=2)) == ["t3", "t2"]


def test_importance_rates_varying_params_and_names_the_conditional_ones(report: Report) -> None:
    assert set(report.importance) >= {"loss", "miner", "lr"}
    assert "workers" not in report.importance  # constant: nothing to explain
    assert sum(report.importance.values()) == pytest.approx(1.0)
    assert "loss.margin" in report.unrated  # numeric, but absent from some recipes
    assert "miner.type_of_triplets" in report.importance  # a string: "n/a" where absent
    assert list(report.mining) == [r.trial.run_id for r in report.rows[:3]]


def test_plots_are_pngs_and_are_logged_to_the_parent_run(
    report: Report, search: tuple[str, str], tmp_path: Path
) -> None:
    paths = write_plots(report, tmp_path / "out")
    assert report.skipped == {}
    assert sorted(p.name for p in paths) == sorted(FILES.values())
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE), path
        assert len(data) > 10_000, path
    attach(report, paths)
    logged = MlflowClient(search[0]).list_artifacts(search[1], "report")
    assert {Path(a.path).name for a in logged} == {*FILES.values(), "leaderboard.txt"}


def test_newest_parent_is_the_default_and_run_picks_another(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    older = make_search(uri, TRIALS[:2], name="first")
    time.sleep(0.01)  # start times are in milliseconds
    newer = make_search(uri, TRIALS[2:4], name="second")
    assert read_report(uri, EXPERIMENT).search.parent_run_id == newer
    assert read_report(uri, None).search.parent_run_id == newer  # no experiment: the whole store
    first = read_report(uri, EXPERIMENT, older)
    assert trial_ids(first) == ["t1", "t2"]
    with pytest.raises(StoreError, match=f"is a trial of search {older}"):
        read_report(uri, EXPERIMENT, first.rows[0].trial.run_id)


def test_degenerate_searches_skip_plots_with_a_note(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    no_margin = [TRIALS[2], TRIALS[3]]  # margin-free recipes, 2 finished trials
    make_search(uri, [FakeTrial(t.trial_id, t.params, t.scores, mining=False) for t in no_margin])
    report = read_report(uri, EXPERIMENT)
    assert "no scored trial has a loss or miner margin" in report.skipped["margin"]
    assert "2 finished trial(s); needs 3" in report.skipped["importance"]
    assert "no mining.* metrics" in report.skipped["mining"]
    assert [p.name for p in write_plots(report, tmp_path / "out")] == [FILES["loss_miner"]]


def finished(*rows: tuple[str, str, float]) -> list[TrialResult]:
    return [
        TrialResult(
            f"r{i}", f"t{i}", f"t{i}", "trial", "finished", {"loss": loss, "lr": lr}, {MAP: s}
        )
        for i, (loss, lr, s) in enumerate(rows)
    ]


@pytest.mark.parametrize(
    ("trials", "reason"),
    [
        (finished(("A", "0.1", 0.1), ("B", "0.2", 0.2)), "2 finished trial(s); needs 3"),
        (
            finished(*[("A", lr, s) for lr, s in (("0.1", 0.1), ("0.2", 0.2), ("0.3", 0.3))]),
            "1 parameter(s) vary",
        ),
        (finished(("A", "0.1", 0.5), ("B", "0.2", 0.5), ("A", "0.3", 0.5)), "the same score"),
    ],
)
def test_importance_is_skipped_with_a_reason(trials: list[TrialResult], reason: str) -> None:
    importance, _, why_not = param_importance(trials, MAP, "max")
    assert importance == {}
    assert why_not is not None and reason in why_not


def test_importance_is_seeded() -> None:
    trials = finished(("A", "0.1", 0.1), ("B", "0.2", 0.4), ("A", "0.3", 0.3), ("B", "0.05", 0.2))
    first = param_importance(trials, MAP, "max")[0]
    assert set(first) == {"loss", "lr"}
    assert param_importance(trials, MAP, "max")[0] == first


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.main, ["report", *args])


def test_cli_prints_the_leaderboard_and_writes_plots(
    search: tuple[str, str], tmp_path: Path
) -> None:
    result = invoke(EXPERIMENT, "--tracking-uri", search[0], "--out", str(tmp_path), "--top", "2")
    assert result.exit_code == 0, result.output
    assert "(t1)" in result.output and "(t2)" in result.output and "(t3)" not in result.output
    assert all((tmp_path / name).is_file() for name in FILES.values())


def test_cli_takes_a_space_file_and_its_tracking_uri(tmp_path: Path) -> None:
    make_search(f"sqlite:///{tmp_path}/runs.db", TRIALS[:2])
    space = tmp_path / "space.yaml"
    raw = {"name": "quickstart", "tracking": {"experiment": EXPERIMENT, "uri": "sqlite:///runs.db"}}
    space.write_text(yaml.safe_dump(raw))
    result = invoke(str(space))  # relative to the cwd (tmp_path), like `minesearch run`
    assert result.exit_code == 0, result.output
    assert "skipped importance: 2 finished trial(s); needs 3" in result.output
    parent = result.output.split("(", 1)[1].split(")", 1)[0]
    assert (tmp_path / "minesearch_report" / parent / FILES["margin"]).is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no experiment 'nope' in the store; known: ['Default', 'digits']"),
        (["digits", "--run", "0" * 32], "no run '" + "0" * 32 + "'"),
        (["missing.yaml"], "cannot read the space file"),
    ],
)
def test_cli_exits_2_when_the_search_is_not_found(
    search: tuple[str, str], args: list[str], message: str
) -> None:
    result = invoke(*args, "--tracking-uri", search[0])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert message in result.output


def test_cli_exits_2_without_a_store_and_creates_none(tmp_path: Path) -> None:
    result = invoke(EXPERIMENT)
    assert result.exit_code == 2, result.output
    assert "no MLflow store at" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_the_paired_reruns_read_as_a_table() -> None:
    from minesearch.report._format import format_reruns
    from minesearch.results import SearchResult

    metrics = {
        "rerun.units": 4.0,
        "rerun.indistinguishable": 2.0,
        "rerun.0.mean": 0.73,
        "rerun.0.worse": 0.0,
        "rerun.1.mean": 0.71,
        "rerun.1.worse": 0.0,
        "rerun.1.p_worse": 0.21,
        "rerun.2.mean": 0.62,
        "rerun.2.worse": 1.0,
        "rerun.2.p_worse": 0.004,
    }
    tags = {"rerun.0.recipe": "B", "rerun.1.recipe": "A", "rerun.2.recipe": "TripletMargin m=0.05"}
    found = SearchResult(
        "u", "e", "0", "p", "s", "mean_average_precision_at_r", "max", [], {}, metrics, tags
    )
    lines = format_reruns(found).splitlines()
    assert lines[0].startswith("paired re-runs on val: 4 seeds per recipe")
    assert lines[1].split() == ["0.7300", "best", "mean", "B"]
    assert lines[2].split() == ["0.7100", "p=0.210", "indistinguishable", "A"]
    assert lines[3].split()[:3] == ["0.6200", "p=0.004", "worse"]
    assert format_reruns(SearchResult("u", "e", "0", "p", "s", "m", "max", [], {})) == ""
