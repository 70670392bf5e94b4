"""cluster.yaml is a config that `ray up` accepts, and it sets up minesearch on every node.

Validation uses the steps `ray up` runs before it talks to the cloud
(`ray.autoscaler._private.commands._bootstrap_config`): `prepare_config` merges the
provider's defaults.yaml and the setup commands, then `validate_config` checks the result
against Ray's `ray-schema.json` plus its cross-field rules. Neither contacts AWS or starts Ray.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
INSTALL = "pip install -e ~/minesearch"
GPU_FAMILIES = re.compile(r"^(g4dn|g5|g6|g6e|gr6|p3|p4d|p4de|p5|p5e|p5en)\.")


@pytest.fixture
def raw() -> dict[str, Any]:
    """The file as written, before Ray fills in its defaults."""
    return yaml.safe_load(CLUSTER_YAML.read_text())


def ray_checked(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does with the file before contacting the cloud; raises when Ray would."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_ray_accepts_the_file(raw: dict[str, Any]) -> None:
    prepared = ray_checked(raw)
    assert prepared["cluster_name"] == "minesearch"
    assert prepared["provider"]["type"] == "aws"
    assert "docker" not in raw  # plain VMs: no container layer


def test_every_node_installs_minesearch(raw: dict[str, Any]) -> None:
    assert any(INSTALL in command for command in raw["setup_commands"])
    prepared = ray_checked(raw)
    # prepare_config prepends setup_commands to both lists: head and workers install it.
    for key in ("head_setup_commands", "worker_setup_commands"):
        assert any(INSTALL in command for command in prepared[key]), key
    # A node type's own worker_setup_commands would replace the global ones.
    for name, node_type in raw["available_node_types"].items():
        assert "worker_setup_commands" not in node_type, name


def test_ray_on_the_cluster_matches_the_project(raw: dict[str, Any]) -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "minesearch"
    wanted = next(
        Requirement(dep)
        for dep in pyproject["project"]["dependencies"]
        if Requirement(dep).name == "ray"
    )
    pins = re.findall(r'"(ray\[[^\]]*\]==[^"]+)"', " ".join(raw["setup_commands"]))
    assert len(pins) == 1, "setup_commands should pin Ray to the version that runs `ray up`"
    pinned = Requirement(pins[0])
    assert pinned.extras == wanted.extras
    (version,) = (spec.version for spec in pinned.specifier)
    assert wanted.specifier.contains(version), (version, str(wanted.specifier))


def test_project_directory_is_synced_to_every_node(raw: dict[str, Any]) -> None:
    assert raw["file_mounts"] == {"~/minesearch": "."}
    # "." is resolved where `ray up` runs, which must be the repository root.
    assert (ROOT / "pyproject.toml").is_file()
    assert ".gitignore" in raw["rsync_filter"]
    assert "**/.git" in raw["rsync_exclude"]


def test_head_and_gpu_worker_node_types(raw: dict[str, Any]) -> None:
    node_types = raw["available_node_types"]
    head = node_types[raw["head_node_type"]]
    assert "GPU" not in head["resources"]
    workers = {name: t for name, t in node_types.items() if name != raw["head_node_type"]}
    assert list(workers) == ["gpu"]
    gpu = workers["gpu"]
    assert GPU_FAMILIES.match(gpu["node_config"]["InstanceType"])
    assert gpu["resources"]["GPU"] >= 1
    assert gpu["min_workers"] == 0  # no GPU is paid for while nothing runs
    assert 1 <= gpu["max_workers"] <= raw["max_workers"]
    assert raw["idle_timeout_minutes"] > 0
    prepared = ray_checked(raw)
    assert prepared["available_node_types"][raw["head_node_type"]]["max_workers"] == 0


def test_start_commands(raw: dict[str, Any]) -> None:
    head = raw["head_start_ray_commands"]
    worker = raw["worker_start_ray_commands"]
    assert head[0] == worker[0] == "ray stop"
    assert "--head --port=6379" in head[-1]
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head[-1]
    assert "--dashboard-host=127.0.0.1" in head[-1]
    assert "--address=$RAY_HEAD_IP:6379" in worker[-1]


def test_header_documents_the_workflow() -> None:
    header = CLUSTER_YAML.read_text().split("\ncluster_name:")[0]
    for command in (
        "ray up cluster.yaml",
        "ray dashboard cluster.yaml",
        "ray job submit --address http://127.0.0.1:8265 --working-dir . -- minesearch run",
        "ray down cluster.yaml",
        "s3://",
        "MLFLOW_TRACKING_URI",
    ):
        assert command in header, command


def _unknown_top_level_key(config: dict[str, Any]) -> None:
    config["idle_timeout_minute"] = 5  # a typo of idle_timeout_minutes


def _wrong_type(config: dict[str, Any]) -> None:
    config["max_workers"] = "four"


def _fractional_gpu(config: dict[str, Any]) -> None:
    config["available_node_types"]["gpu"]["resources"]["GPU"] = 0.5


def _node_type_without_resources(config: dict[str, Any]) -> None:
    del config["available_node_types"]["gpu"]["resources"]


def _misspelled_node_type_field(config: dict[str, Any]) -> None:
    config["available_node_types"]["gpu"]["max_worker"] = 4


def _unknown_head_node_type(config: dict[str, Any]) -> None:
    config["head_node_type"] = "ray.head.default"


def _min_workers_above_max(config: dict[str, Any]) -> None:
    config["available_node_types"]["gpu"]["min_workers"] = config["max_workers"] + 1


SCHEMA_ERROR = jsonschema.ValidationError


@pytest.mark.parametrize(
    ("break_it", "error", "match"),
    [
        pytest.param(
            _unknown_top_level_key,
            SCHEMA_ERROR,
            "'idle_timeout_minute' was unexpected",
            id="unknown_top_level_key",
        ),
        pytest.param(_wrong_type, SCHEMA_ERROR, "'four' is not of type 'integer'", id="wrong_type"),
        pytest.param(
            _fractional_gpu, SCHEMA_ERROR, "0.5 is not of type 'integer'", id="fractional_gpu"
        ),
        pytest.param(
            _node_type_without_resources,
            SCHEMA_ERROR,
            "'resources' is a required",
            id="node_type_without_resources",
        ),
        pytest.param(
            _misspelled_node_type_field,
            SCHEMA_ERROR,
            "'max_worker' was unexpected",
            id="misspelled_node_type_field",
        ),
        pytest.param(
            _unknown_head_node_type,
            ValueError,
            "must be one of `available_node_types`",
            id="unknown_head_node_type",
        ),
        pytest.param(
            _min_workers_above_max,
            ValueError,
            "smaller than the sum of `min_workers`",
            id="min_workers_above_max",
        ),
    ],
)
def test_ray_rejects_a_broken_copy(
    raw: dict[str, Any], break_it: Any, error: type[Exception], match: str
) -> None:
    """The validation above is not vacuous: each of these edits makes Ray refuse the file."""
    broken = copy.deepcopy(raw)
    break_it(broken)
    with pytest.raises(error, match=re.escape(match)):
        ray_checked(broken)
