"""The report's plots and text logged to the search's parent run under `report/`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from minesearch.report._build import Report
from minesearch.report._format import format_leaderboard
from minesearch.tracking import log_files, names


def attach(report: Report, paths: Sequence[Path]) -> None:
    """Log the plots and the leaderboard text to the parent run under `report/`."""
    search = report.search
    log_files(
        search.tracking_uri,
        search.parent_run_id,
        paths,
        names.REPORT_DIR,
        texts={names.LEADERBOARD_ARTIFACT: format_leaderboard(report) + "\n"},
    )
