"""The Python API: `minesearch.run(space, **options)`, the search `minesearch run` runs, for a
notebook or a script.

One code path: the `minesearch` command is a thin layer over `run` (it chooses a view and prints
what `run` returns). `run` validates (every problem at once, `InputError`), runs the search and the
steps after it (the control, re-runs, the test estimate), builds the report, attaches its plots to
the parent run and exports the best model, as the command does. It prints nothing unless a `view`
is asked for; what did not work but does not fail the search (a plot, the export) is a
`logging` warning.

Runs in the CLI's process (the Tune driver). Imports only the light rooms at import time
(`config`); the search, the report and the export when `run` is called.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from minesearch.config import SpaceSpec, SpecError, load_spec, spec_from_dict
from minesearch.config.vocab import runs_user_code

if TYPE_CHECKING:
    from minesearch.export import Exported
    from minesearch.report import Report
    from minesearch.results import SearchResult, TrialResult, Verdict
    from minesearch.search import Finished, ViewMode

logger = logging.getLogger(__name__)

Space = str | Path | Mapping[str, Any] | SpaceSpec


class InputError(ValueError):
    """Input that cannot work (the space, its data, an option), found before any compute or when
    the cluster or the storage turns out unusable; the message names the field and what is
    allowed, as `minesearch run` prints it (with exit code 2). `problems`: one per line."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


@dataclass(frozen=True)
class SearchOutcome:
    """A finished search, as `minesearch run` presents it.

    `result` is every run of the search read back from MLflow (`minesearch.results`); `report`
    is its leaderboard as `minesearch report` shows it (`text` prints it); `directory` holds the
    search's Ray state, its log and the report's plots (None for s3://-like storage); `exported`
    is the best model's TorchScript export, also on its MLflow run (None when not asked for, or
    when it could not be made: the warning says why, `minesearch export` can retry).
    """

    result: SearchResult
    report: Report
    directory: Path | None
    exported: Exported | None = None

    @property
    def best(self) -> TrialResult | None:
        """The search's answer: the chosen trial (None when no trial scored)."""
        return self.result.best

    @property
    def verdict(self) -> Verdict | None:
        """Which to keep: the chosen recipe, the control or the pretrained model (`.name`),
        on which evidence; None with nothing to weigh the best trial against."""
        from minesearch.results import verdict

        return verdict(self.result)

    @property
    def parent_run_id(self) -> str:
        return self.result.parent_run_id

    @property
    def tracking_uri(self) -> str:
        return self.result.tracking_uri

    @property
    def text(self) -> str:
        """The report `minesearch run` prints: leaderboard, best recipe, verdict, the UI."""
        from minesearch.report import format_report

        return format_report(self.report)


def run(
    space: Space,
    *,
    address: str | None = None,
    storage_path: str | None = None,
    resume: bool = False,
    confirm: str | tuple[int, int] | None = None,
    verbose: bool = False,
    view: ViewMode | None = None,
    export: bool = True,
) -> SearchOutcome:
    """Run the search `space` describes (a space file's path, its content as a dict, or a
    `SpaceSpec`) and return it finished.

    The options are `minesearch run`'s: `address` a Ray cluster (default: RAY_ADDRESS, else a
    local Ray, or the one already started in this process); `storage_path` Ray's storage
    (overrides the space's); `resume` continues the latest interrupted search of the space;
    `confirm` ("K,S" or (K, S)) retrains the top K recipes with S new seeds on the test split;
    `verbose` leaves Ray's own output where Ray puts it instead of the search's log file. `view`
    shows the progress ("live": redrawn on a terminal, else plain lines; "plain": one line per
    trial event; None, the default: nothing). `export=False` skips exporting the best model.

    Raises InputError for input that cannot work (every problem of the space at once),
    `minesearch.SearchInterrupted` when the search was interrupted (continue it with
    `resume=True`)."""
    try:
        spec = validated(space)
    except SpecError as exc:
        raise InputError(str(exc), exc.problems) from None
    from minesearch import search
    from minesearch.tracking import StoreError

    options = search.SearchOptions(
        address=address,
        storage_path=storage_path,
        resume=resume,
        confirm=_confirm(confirm, spec),
        verbose=verbose,
        view=_view(view),
    )
    space_file = Path(space) if isinstance(space, str | Path) else None
    try:
        finished = search.run_search(spec, space_file, options)
    except (search.ClusterTooSmall, search.NothingToResume, search.StorageUnusable) as exc:
        raise InputError(str(exc)) from exc
    except StoreError as exc:  # a store MLflow will not open, found before the search starts
        raise InputError(str(exc)) from None
    return present(finished, export)


def validated(space: Space) -> SpaceSpec:
    """The spec of a space whose data has been checked too; SpecError lists every problem.

    `validate` and `run` share it, so a search never starts on input `validate` would reject."""
    from minesearch.data import data_errors

    spec = _spec(space)
    source = str(space) if isinstance(space, str | Path) else spec.name
    if problems := data_errors(spec):
        raise SpecError(source, problems)
    if runs_user_code(spec.model.backbone):  # its factory is called once, here (needs torch)
        from minesearch.models import network_errors

        if problems := network_errors(spec):
            raise SpecError(source, problems)
    return spec


def _spec(space: Space) -> SpaceSpec:
    if isinstance(space, SpaceSpec):
        return space
    if isinstance(space, Mapping):
        return spec_from_dict(dict(space), Path.cwd())
    if isinstance(space, str | Path):
        return load_spec(space)
    raise InputError(
        f"space: a space file's path, its content as a dict, or a SpaceSpec; got {type(space)}"
    )


def _confirm(confirm: str | tuple[int, int] | None, spec: SpaceSpec) -> tuple[int, int] | None:
    """`--confirm K,S` checked as the command checks it (the same messages)."""
    if confirm is None:
        return None
    from minesearch import search

    text = confirm if isinstance(confirm, str) else ",".join(str(n) for n in confirm)
    try:
        parsed = search.parse_confirm(text)
        if problems := search.confirm_errors(spec):
            raise search.ConfirmError("\n".join(problems))
    except search.ConfirmError as exc:
        raise InputError(str(exc)) from None
    return parsed


def _view(view: Any) -> ViewMode | None:
    from minesearch.search import VIEW_MODES

    if view is not None and view not in VIEW_MODES:
        allowed = ", ".join(repr(m) for m in VIEW_MODES)
        raise InputError(f"view: one of {allowed} or None (nothing shown), got {view!r}")
    return view


def present(finished: Finished, export: bool = True) -> SearchOutcome:
    """The report of a finished search, its plots on the parent run, and (with `export`) the best
    trial's model exported onto its child run. Neither of the last two may fail the search."""
    from minesearch import report

    out = finished.directory or Path(tempfile.mkdtemp())
    built = report.build_report(finished.result)
    try:
        report.attach(built, report.write_plots(built, out / "report"))
    except Exception as exc:  # a plot must not cost the user a finished search
        logger.warning("the report could not be attached (%s); run `minesearch report`", exc)
    exported = None
    if export and finished.result.best is not None:
        exported = export_best(finished.result, out / "export")
    return SearchOutcome(finished.result, built, finished.directory, exported)


def export_best(result: SearchResult, out_dir: Path) -> Exported | None:
    """The best trial's model (TorchScript + preprocessing JSON) on its child run under export/,
    and as the run's MLflow Model (registered if the space says so); None, with a warning, when
    it cannot be made (`minesearch export` can redo the export)."""
    from minesearch.export import export_run

    try:
        return export_run(
            result.parent_run_id, "torchscript", out_dir, result.tracking_uri, mlflow_model=True
        )
    except Exception as exc:  # the search is done: its model can be exported later
        logger.warning("the search's model was not exported: %s", exc)
        return None
