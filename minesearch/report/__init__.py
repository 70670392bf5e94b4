"""report: how a search reads, as text and plots, from `minesearch.results`.

`build_report` adds to a `SearchResult` what a reader needs (the top rows with their epoch-0
scores, mining curves, fANOVA parameter importance); `format_report` is the text both
`minesearch run` (when a search ends) and `minesearch report` print; `write_plots` draws the PNGs
and `attach` logs them to the parent run.

Runs in the CLI (after a search, or on its own). Imports matplotlib, optuna (importance) and the
rooms below it; the MLflow reads go through `minesearch.tracking`.
"""

from minesearch.report._attach import attach
from minesearch.report._build import Report, Row, build_report, locate, read_report
from minesearch.report._format import format_confirmations, format_leaderboard, format_report
from minesearch.report._importance import param_importance
from minesearch.report._plots import FILES, write_plots

__all__ = [
    "FILES",
    "Report",
    "Row",
    "attach",
    "build_report",
    "format_confirmations",
    "format_leaderboard",
    "format_report",
    "locate",
    "param_importance",
    "read_report",
    "write_plots",
]
