"""The space file: parsing, defaults, and every problem reported at once with its field path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from minesearch.config import Range, SpaceSpec, SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "search_spaces" / "quickstart.yaml"


def problems_of(raw: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw, "test.yaml")
    assert info.value.problems, "a SpecError must carry at least one problem"
    return info.value.problems


def one_problem(raw: Any) -> str:
    problems = problems_of(raw)
    assert len(problems) == 1, problems
    return problems[0]


def with_params(**params: Any) -> dict[str, Any]:
    return {"name": "t", "search": {"params": params}}


# --- files that parse -------------------------------------------------------------------------


def test_quickstart_parses() -> None:
    spec = load_spec(QUICKSTART)
    assert spec.name == "quickstart-digits"
    assert spec.experiment == "quickstart-digits"
    assert spec.data.source == "digits"
    assert spec.data.split.val == 0.3 and spec.data.split.test == 0.0
    assert spec.train.batch.classes == 4 and spec.train.batch.per_class == 8
    assert spec.search.metric == "mean_average_precision_at_r" and spec.search.mode == "max"
    params = spec.search.params
    assert params["loss"] == ["TripletMarginLoss", "ContrastiveLoss", "MultiSimilarityLoss"]
    assert params["margin"] == Range(low=0.01, high=0.5)
    assert params["lr"] == Range(low=1e-4, high=1e-2, log=True)
    assert params["type_of_triplets"] == ["all", "hard", "semihard", "easy"]


def test_defaults_fill_a_minimal_file() -> None:
    spec = parse_spec({"name": "minimal"})
    assert spec.experiment == "minimal"  # tracking.experiment defaults to the name
    assert spec.data.source == "digits" and spec.data.path is None
    assert spec.data.split.by == "class" and spec.data.split.seed == 0
    assert spec.model.backbone == "auto" and spec.model.head == "auto"
    assert spec.model.embedding_dim is None  # the backbone's width
    assert spec.train.epochs == 5 and spec.train.workers == 1 and not spec.train.use_gpu
    assert spec.train.batch.classes == 4 and spec.train.batch.per_class == 8
    assert spec.search.trials == 8 and spec.search.concurrent == 1
    assert spec.search.sampler.name == "tpe" and spec.search.scheduler.name == "asha"
    assert spec.search.params == {}
    assert spec.tracking.uri is None and spec.storage_path is None
    assert spec.tracking.register_model is None  # logged on its run, not registered


def test_param_forms_keep_their_types() -> None:
    spec = parse_spec(with_params(margin=0.2, lr=[1e-3, 1e-2], miner="TripletMarginMiner"))
    assert spec.search.params == {"margin": 0.2, "lr": [1e-3, 1e-2], "miner": "TripletMarginMiner"}
    spec = parse_spec(with_params(lr={"low": 1e-4, "high": 1e-2, "log": True}))
    assert isinstance(spec.search.params["lr"], Range)


def test_spec_is_frozen() -> None:
    spec = parse_spec({"name": "t"})
    with pytest.raises(ValidationError, match="frozen"):
        spec.name = "other"


# --- every problem at once --------------------------------------------------------------------


def test_every_independent_problem_is_reported_together() -> None:
    raw = {
        "name": "t",
        "trian": {"epochs": 3},
        "train": {"epochs": 0, "workers": "two"},
        "search": {
            "trials": 0,
            "params": {"loss": ["TripletMarginLos"], "lr": {"low": 0.1, "high": 0.01}},
        },
    }
    problems = problems_of(raw)
    joined = "\n".join(problems)
    for field in (
        "trian:",
        "train.epochs:",
        "train.workers:",
        "search.trials:",
        "search.params.lr:",
    ):
        assert field in joined, (field, problems)
    # The catalog check still runs although the file has structural mistakes elsewhere.
    assert "search.params.loss: unknown name 'TripletMarginLos'" in joined
    assert len(problems) == 6, problems


def test_catalog_checks_skip_params_whose_form_is_wrong() -> None:
    """A malformed `loss` hides where the others apply: no guessed 'applies to none' message."""
    problems = problems_of(with_params(loss=[None], pos_margin=0.1))
    assert problems == ["search.params.loss.0: Input should be a number or a name (given None)"]


def test_spec_error_str_lists_every_problem() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"name": "t", "train": {"epochs": 0, "workers": 0}}, "my.yaml")
    text = str(info.value)
    assert text.startswith("my.yaml: 2 problem(s)")
    assert "train.epochs" in text and "train.workers" in text
    assert info.value.source == "my.yaml"


# --- unknown keys -----------------------------------------------------------------------------


def test_misspelled_top_level_key() -> None:
    msg = one_problem({"name": "t", "trian": {"epochs": 2}})
    assert msg.startswith("trian: unknown key")
    assert "did you mean 'train'?" in msg
    assert (
        "allowed: ['data', 'model', 'name', 'search', 'storage_path', 'tracking', 'train']" in msg
    )


def test_misspelled_nested_key() -> None:
    msg = one_problem({"name": "t", "train": {"epoch": 2}})
    assert msg.startswith("train.epoch: unknown key")
    assert "did you mean 'epochs'?" in msg
    assert "'workers'" in msg and "'batch'" in msg


def test_misspelled_deeply_nested_key() -> None:
    msg = one_problem({"name": "t", "data": {"split": {"vall": 0.2}}})
    assert msg.startswith("data.split.vall: unknown key")
    assert "did you mean 'val'?" in msg and "allowed: ['by', 'seed', 'test', 'val']" in msg


def test_misspelled_range_key_names_range_keys() -> None:
    problems = problems_of(with_params(lr={"low": 1e-4, "hihg": 1e-2}))
    joined = "\n".join(problems)
    assert "search.params.lr.hihg: unknown key (did you mean 'high'?)" in joined
    assert "allowed: ['high', 'log', 'low']" in joined
    assert "search.params.lr.high: Field required" in joined
    # Only what the range form needs: no noise from the list/constant forms or pydantic internals.
    assert len(problems) == 2, problems
    assert "function-after" not in joined and "valid list" not in joined


def test_unknown_search_param_suggests_and_lists() -> None:
    msg = one_problem(with_params(lrr=0.01))
    assert msg.startswith("search.params.lrr: unknown parameter")
    assert "did you mean 'lr'?" in msg
    assert "'type_of_triplets'" in msg and "'margin'" in msg


# --- wrong types and bounds -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "epochs", "many"),
        ("train", "use_gpu", "maybe"),
        ("model", "embedding_dim", "big"),
        ("search", "mode", "maximise"),
        ("data", "source", "imagenet"),
        ("train", "optimizer", "adamm"),
    ],
)
def test_wrong_type_names_path_and_value(section: str, key: str, value: str) -> None:
    msg = one_problem({"name": "t", section: {key: value}})
    assert msg.startswith(f"{section}.{key}:")
    assert f"(given {value!r})" in msg


def test_closed_choice_lists_allowed_values() -> None:
    msg = one_problem({"name": "t", "search": {"metric": "map"}})
    assert msg.startswith("search.metric:")
    assert "'mean_average_precision_at_r'" in msg and "'precision_at_1'" in msg


@pytest.mark.parametrize(
    ("raw", "field", "given"),
    [
        ({"train": {"batch": {"per_class": 1}}}, "train.batch.per_class", 1),
        ({"train": {"workers": 0}}, "train.workers", 0),
        ({"train": {"epochs": 0}}, "train.epochs", 0),
        ({"search": {"trials": 0}}, "search.trials", 0),
        ({"search": {"concurrent": 0}}, "search.concurrent", 0),
        ({"train": {"batch": {"classes": 1}}}, "train.batch.classes", 1),
        ({"search": {"scheduler": {"patience": 0}}}, "search.scheduler.patience", 0),
    ],
)
def test_too_small_counts_rejected(raw: dict[str, Any], field: str, given: int) -> None:
    msg = one_problem({"name": "t", **raw})
    assert msg.startswith(f"{field}:")
    assert "greater than or equal" in msg and f"(given {given})" in msg


def test_missing_name() -> None:
    assert one_problem({"train": {"epochs": 2}}).startswith("name: Field required")


def test_split_fractions_must_leave_training_data() -> None:
    msg = one_problem({"name": "t", "data": {"split": {"val": 0.6, "test": 0.4}}})
    assert msg.startswith("data.split:") and "val + test must be < 1" in msg


def test_patience_needs_asha() -> None:
    msg = one_problem({"name": "t", "search": {"scheduler": {"name": "fifo", "patience": 1}}})
    assert msg.startswith("search.scheduler.patience:") and "use name asha" in msg
    asha = {"name": "t", "search": {"scheduler": {"name": "asha", "patience": 1}}}
    assert parse_spec(asha).search.scheduler.patience == 1


def test_fewer_batch_classes_than_workers() -> None:
    msg = one_problem({"name": "t", "train": {"workers": 4, "batch": {"classes": 2}}})
    assert msg.startswith("train.batch.classes:") and "workers=4" in msg


# --- ranges -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["lr", "margin"])
def test_range_low_above_high(key: str) -> None:
    msg = one_problem(with_params(**{key: {"low": 0.5, "high": 0.1}}))
    assert msg.startswith(f"search.params.{key}:")
    assert "low must be <= high (given low=0.5, high=0.1)" in msg


@pytest.mark.parametrize("low", [0, -1e-3])
def test_log_range_needs_positive_low(low: float) -> None:
    msg = one_problem(with_params(lr={"low": low, "high": 1e-2, "log": True}))
    assert msg.startswith("search.params.lr:") and "a log range needs low > 0" in msg


def test_range_equal_ends_is_allowed() -> None:
    spec = parse_spec(with_params(lr={"low": 1e-3, "high": 1e-3}))
    assert spec.search.params["lr"] == Range(low=1e-3, high=1e-3)


def test_empty_choice_list_rejected() -> None:
    msg = one_problem(with_params(lr=[]))
    assert msg.startswith("search.params.lr:") and "at least 1 item" in msg


@pytest.mark.parametrize("value", [True, None])
def test_constant_must_be_a_number_or_name(value: Any) -> None:
    # YAML reads `margin: yes` as True; it must not silently become the margin 1.0.
    msg = one_problem(with_params(margin=value))
    assert msg == f"search.params.margin: Input should be a number or a name (given {value!r})"


def test_lr_must_be_positive_number() -> None:
    assert "must be >= 1e-12" in one_problem(with_params(lr=0))
    assert "must be a number" in one_problem(with_params(lr="fast"))


# --- catalog names and parameters -------------------------------------------------------------


def test_unknown_loss_and_miner_names_suggest() -> None:
    problems = problems_of(
        with_params(loss=["TripletMarginLoss", "ContrastivLoss"], miner=["TripletMarginMinr"])
    )
    assert len(problems) == 2, problems
    loss_msg, miner_msg = problems
    assert loss_msg.startswith("search.params.loss: unknown name 'ContrastivLoss'")
    assert "did you mean 'ContrastiveLoss'?" in loss_msg and "'MultiSimilarityLoss'" in loss_msg
    assert miner_msg.startswith("search.params.miner: unknown name 'TripletMarginMinr'")
    assert "did you mean 'TripletMarginMiner'?" in miner_msg
    assert "allowed: ['none', 'TripletMarginMiner', 'BatchHardMiner'," in miner_msg


def test_unknown_loss_as_constant() -> None:
    msg = one_problem(with_params(loss="ArcFace"))
    assert msg.startswith("search.params.loss: unknown name 'ArcFace'")


def test_type_of_triplets_typo_suggests() -> None:
    msg = one_problem(with_params(miner=["TripletMarginMiner"], type_of_triplets=["semi-hard"]))
    assert msg.startswith("search.params.type_of_triplets: 'semi-hard'")
    assert "must be one of ['all', 'hard', 'semihard', 'easy']" in msg
    assert "did you mean 'semihard'?" in msg


def test_type_of_triplets_range_rejected() -> None:
    msg = one_problem(
        with_params(miner="TripletMarginMiner", type_of_triplets={"low": 0, "high": 1})
    )
    assert msg.startswith("search.params.type_of_triplets: a range is not allowed")


@pytest.mark.parametrize(
    "value", [-0.1, [0.1, -0.2], {"low": -0.1, "high": 0.2}], ids=["const", "list", "range"]
)
def test_negative_margin_rejected(value: Any) -> None:
    msg = one_problem(with_params(miner="TripletMarginMiner", margin=value))
    assert msg.startswith("search.params.margin: -0.") and "must be >= 0.0" in msg


def test_negative_separate_margins_rejected() -> None:
    problems = problems_of(
        with_params(miner="TripletMarginMiner", loss_margin=-1.0, miner_margin=-2.0)
    )
    assert problems == [
        "search.params.loss_margin: -1.0 must be >= 0.0 (for TripletMarginLoss)",
        "search.params.miner_margin: -2.0 must be >= 0.0 (for TripletMarginMiner)",
    ]


def test_param_that_applies_to_nothing_chosen() -> None:
    msg = one_problem(with_params(loss="TripletMarginLoss", pos_margin=0.1))
    assert msg.startswith("search.params.pos_margin: applies to none of the chosen losses")
    assert "['TripletMarginLoss']" in msg


def test_type_of_triplets_without_triplet_margin_miner() -> None:
    msg = one_problem(with_params(miner=["BatchHardMiner"], type_of_triplets=["hard"]))
    assert msg.startswith("search.params.type_of_triplets: applies to none")


def test_param_that_applies_to_one_chosen_loss_is_fine() -> None:
    spec = parse_spec(
        with_params(loss=["TripletMarginLoss", "ContrastiveLoss"], pos_margin=[0.0, 0.1])
    )
    assert spec.search.params["pos_margin"] == [0.0, 0.1]


def test_miner_margin_without_margined_miner() -> None:
    msg = one_problem(with_params(miner="BatchHardMiner", miner_margin=0.1))
    assert msg.startswith("search.params.miner_margin: applies to none")


def test_tied_and_separate_margins_together_rejected() -> None:
    msg = one_problem(with_params(miner="TripletMarginMiner", margin=0.1, loss_margin=0.2))
    assert msg.startswith("search.params.margin: give either `margin`")
    assert "not both" in msg


def test_base_bounds_checked() -> None:
    msg = one_problem(with_params(loss="MultiSimilarityLoss", base=2.0))
    assert msg == "search.params.base: 2.0 must be <= 1.0 (for MultiSimilarityLoss)"


# --- data section -----------------------------------------------------------------------------


def test_parquet_source_needs_path() -> None:
    msg = one_problem({"name": "t", "data": {"source": "parquet"}})
    assert msg.startswith("data.path: source 'parquet' needs data.path")


def test_path_only_where_used() -> None:
    msg = one_problem(
        {
            "name": "t",
            "data": {"source": "text_topics", "path": "x"},
            "model": {"backbone": "minilm"},
        }
    )
    assert msg.startswith("data.path: only used with source 'parquet' or 'image_folder'")


@pytest.mark.parametrize(
    ("data", "model", "message"),
    [
        ({"source": "text_topics"}, {}, "model.backbone: text needs a text encoder"),
        ({"source": "digits"}, {"backbone": "minilm"}, "model.backbone: 'minilm' reads text"),
        ({"source": "digits"}, {"backbone": "resnet"}, "model.backbone: unknown"),
        ({"source": "digits"}, {"backbone": "python:nets"}, "model.backbone: malformed python:"),
        (
            {"source": "text_topics"},
            {"backbone": "python:nets:build"},
            "model.backbone: 'python:nets:build' reads tensor, image inputs, but data (source "
            "'text_topics') gives text; a python: backbone is given tensors, and text becomes "
            "tensors only through its model's own tokenizer: use hf:<dir-or-name>",
        ),
    ],
)
def test_backbone_must_read_the_data(
    data: dict[str, Any], model: dict[str, Any], message: str
) -> None:
    msg = one_problem({"name": "t", "data": data, "model": model})
    assert msg.startswith(message), msg


def test_a_python_backbone_is_checked_by_name_only_when_loading() -> None:
    """Loading a space imports no user code (nor torch): `minesearch validate` calls the
    factory afterwards (`minesearch.models.network_errors`)."""
    spec = parse_spec({"name": "t", "model": {"backbone": "python:not_imported_yet:build"}})
    assert spec.model.backbone == "python:not_imported_yet:build"


def test_parquet_path_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    msg = one_problem({"name": "t", "data": {"source": "parquet", "path": str(missing)}})
    assert msg == f"data.path: not found (given {str(missing)!r})"


# --- the file itself --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_non_mapping_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems == ["the file must be a mapping with at least `name:`"]
    assert info.value.source == str(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("name: t\ntrain: {epochs: 2\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (msg,) = info.value.problems
    assert msg.startswith("not valid YAML:") and "line" in msg


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems[0].startswith("not valid YAML:")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "absent.yaml")
    assert info.value.problems == ["cannot read the space file: No such file or directory"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    assert info.value.problems[0].startswith("cannot read the space file:")


def test_quickstart_round_trips_through_a_copy(tmp_path: Path) -> None:
    """A mutated copy of the quickstart parses into a different, still valid, spec."""
    import yaml

    raw = yaml.safe_load(QUICKSTART.read_text())
    changed = copy.deepcopy(raw)
    changed["search"]["params"]["miner"] = ["none"]
    del changed["search"]["params"]["type_of_triplets"]
    spec = parse_spec(changed)
    assert isinstance(spec, SpaceSpec) and spec.search.params["miner"] == ["none"]
    assert raw == yaml.safe_load(QUICKSTART.read_text())


def test_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    """YAML 1.1 reads `1e-3` as a string; a space file must not."""
    path = tmp_path / "space.yaml"
    path.write_text("name: x\nsearch:\n  params:\n    lr: 1e-3\n    margin: [1e-2, 2E-1]\n")
    params = load_spec(path).search.params
    assert params["lr"] == 1e-3
    assert params["margin"] == [1e-2, 0.2]


def test_register_model_is_a_plain_registry_name() -> None:
    spec = parse_spec({"name": "r", "tracking": {"register_model": "digits-embedder_v1.2"}})
    assert spec.tracking.register_model == "digits-embedder_v1.2"
    for bad in ("", "models:/x", "a/b", "-leading"):
        problem = one_problem({"name": "r", "tracking": {"register_model": bad}})
        assert "tracking.register_model" in problem, problem
