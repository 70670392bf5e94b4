"""Does fine-tuning beat the pretrained model? Real searches with the shipped defaults, read back.

Run: python bench/pretrained_check.py [SPACE ...]   (default: vectors.yaml and text_minilm.yaml)

Each space runs as a user runs it (`minesearch run`, a local Ray, a fresh MLflow store and Ray
storage in a temp directory) and its search is read back from MLflow: the pretrained reference on
val and test (the bar), the best trial's epoch 0 (with a head that starts at the pretrained model it
equals the bar), its selected epoch and score, its test score, the control's, the verdict and the
wall time. The vectors are the shipped text set embedded by the shipped MiniLM
(`scripts/make_topic_vectors.py`); nobody tuned this project's defaults on one number of this
output: the defaults come from the in-process measurements the spaces' comments cite.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minesearch.config.vocab import TEST_PREFIX
from minesearch.report import read_report
from minesearch.results import summary_line, verdict

ROOT = Path(__file__).resolve().parents[1]
SPACES = ("search_spaces/vectors.yaml", "search_spaces/text_minilm.yaml")


def run(space: str, work: Path) -> float:
    """`minesearch run SPACE` into `work`; its wall time in seconds."""
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    started = time.perf_counter()
    command = [
        sys.executable,
        "-m",
        "minesearch",
        "run",
        space,
        "--storage-path",
        str(work / "ray"),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-6000:]
        raise SystemExit(f"{space} failed ({done.returncode}):\n{tail}")
    return time.perf_counter() - started


def describe(space: str, work: Path, seconds: float) -> list[str]:
    report = read_report(f"sqlite:///{work / 'mlflow.db'}", None)
    search, metric = report.search, report.metric
    test = f"{TEST_PREFIX}{metric}"
    best, control = search.best, search.control
    lines = [f"{space}: {len(search.searched)} trials, {seconds / 60:.1f} min wall"]
    pretrained = search.pretrained
    lines.append(
        f"  pretrained  val {pretrained.get(metric, float('nan')):.4f}  "
        f"test {pretrained.get(test, float('nan')):.4f}"
    )
    if best is not None:
        epoch0 = next((r.baseline for r in report.rows if r.trial == best), None)
        lines.append(
            f"  best        val {best.score(metric) or float('nan'):.4f} at epoch "
            f"{best.selected_epoch}/{best.epochs}  test {best.metrics.get(test, float('nan')):.4f}"
            f"  epoch 0 {epoch0 if epoch0 is not None else float('nan'):.4f}  ({best.label})"
        )
    if control is not None:
        lines.append(
            f"  control     val {control.score(metric) or float('nan'):.4f}  "
            f"test {control.metrics.get(test, float('nan')):.4f}"
        )
    found = verdict(search)
    lines.append(f"  verdict     {summary_line(found) if found else 'no pretrained reference'}")
    return lines


def main(spaces: list[str]) -> None:
    for space in spaces:
        with tempfile.TemporaryDirectory(prefix="pretrained_check_") as tmp:
            work = Path(tmp)
            print("\n".join(describe(space, work, run(space, work))), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spaces", nargs="*", default=list(SPACES))
    main(parser.parse_args().spaces)
