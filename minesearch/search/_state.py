"""Where a search lives in Ray storage, and what `--resume` needs to find it again.

A search is a Tune experiment directory `<storage>/<space name>-<timestamp>`; beside Tune's own
state it holds `minesearch.json`: the MLflow parent run and the spec it ran with, so a resumed
search writes into the same parent run and refuses a space file that changed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

STATE_FILE = "minesearch.json"


class NothingToResume(ValueError):
    """`--resume` found no interrupted search of this space in the storage."""


@dataclass(frozen=True)
class SearchState:
    parent_run_id: str
    spec: dict[str, Any]


def new_name(space_name: str) -> str:
    return f"{space_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def save_state(experiment_dir: Path, state: SearchState) -> None:
    experiment_dir.mkdir(parents=True, exist_ok=True)
    payload = {"parent_run_id": state.parent_run_id, "spec": state.spec}
    (experiment_dir / STATE_FILE).write_text(json.dumps(payload, indent=2))


def latest(storage: str, space_name: str) -> Path:
    """The newest restorable search of `space_name` under a local `storage`."""
    candidates = sorted(Path(storage).glob(f"{space_name}-*"), reverse=True)
    for path in candidates:
        if (path / STATE_FILE).exists() and tune.Tuner.can_restore(str(path)):
            return path
    raise NothingToResume(
        f"--resume: no search of {space_name!r} to resume under {storage} "
        "(run it once without --resume)"
    )


def load_state(experiment_dir: Path, spec: dict[str, Any]) -> SearchState:
    saved = json.loads((experiment_dir / STATE_FILE).read_text())
    if saved["spec"] != spec:
        raise NothingToResume(
            f"--resume: the space file changed since {experiment_dir.name} started; resume it "
            "with the same file, or start a new search without --resume"
        )
    return SearchState(saved["parent_run_id"], saved["spec"])
