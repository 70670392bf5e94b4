"""The `minesearch` command: thin over the library, each command importing only what it uses.

`validate` and `catalog` load neither Ray nor MLflow nor torch (validate loads torch only to call a
`python:` backbone's factory); `run` loads the search driver, `report` the report, `export` and
`embed` torch. Bad input exits with code 2 and a message naming the field and the allowed values,
no traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from minesearch.api import validated
from minesearch.config.vocab import INPUT_TYPES, SELECTED_PREFIX

if TYPE_CHECKING:
    from minesearch.api import SearchOutcome
    from minesearch.config import SpaceSpec
    from minesearch.results import SearchResult
    from minesearch.search import ViewMode

# `validated`: the check `validate` and `run` share (tests use it)
__all__ = ["entry", "main", "validated"]

BAD_INPUT = 2
INTERRUPTED = 130  # the shell's code for a command ended by SIGINT


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(BAD_INPUT)


def _creatable_dir(path: Path, what: str) -> None:
    """A directory a command will write into, made now: a path that cannot be one (a file on the
    way, no permission) is bad input, named, before any work is done."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"error: {what}: cannot create the directory {path.absolute()}: {exc.strerror}")


def _validated_or_exit(path: Path) -> SpaceSpec:
    from minesearch.config import SpecError

    try:
        return validated(path)
    except SpecError as exc:
        _fail(f"error: {exc}")


def entry() -> NoReturn:
    """The `minesearch` program (`python -m minesearch` too): `main`, then its exit without the
    interpreter's teardown. After a search that teardown (the modules of torch, Ray, MLflow and
    the rest freed one by one) took ~1.8 s of a ~35 s vectors search, after everything was
    written. The exit does what the interpreter's would before it: Ray stopped (this process's
    local Ray, as Ray's own exit hook would), non-daemon threads joined and atexit hooks run
    (`threading._shutdown`, then `atexit`: MLflow's, logging's), the streams flushed. Only a
    SystemExit, which click ends every command with, takes this way; anything else leaves as
    usual. Tests call `main` in-process (click's runner), which never exits the interpreter."""
    try:
        main()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):  # as the interpreter does with SystemExit("message")
        print(code, file=sys.stderr)
        code = 1
    _stop_ray()
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:  # not CPython's threading: exit the usual way
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    with contextlib.suppress(OSError, ValueError):  # a closed pipe has nothing to flush to
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code or 0)


def _stop_ray() -> None:
    """Ray, when this process started or joined it, stopped as its atexit hook would."""
    if (ray := sys.modules.get("ray")) is not None and ray.is_initialized():
        ray.shutdown()


@click.group()
@click.version_option(package_name="minesearch")
def main() -> None:
    """Find the metric-learning recipe that retrieves best on your data (Ray Tune, MLflow)."""


@main.command()
@click.argument("space", type=click.Path(path_type=Path))
def validate(space: Path) -> None:
    """Check SPACE (a space file) and its data; report every problem at once."""
    spec = _validated_or_exit(space)
    click.echo(
        f"{space}: ok ({spec.name}: {spec.search.trials} trials x {spec.train.epochs} epochs)"
    )


@main.command()
@click.argument("space", type=click.Path(path_type=Path))
@click.option(
    "--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else local Ray)."
)
@click.option(
    "--storage-path",
    default=None,
    help="Ray storage for trials and checkpoints (shared on a cluster).",
)
@click.option("--resume", is_flag=True, help="Continue the latest interrupted search of SPACE.")
@click.option(
    "--confirm",
    "confirm_text",
    default=None,
    metavar="K,S",
    help="Re-train the top K recipes with S new seeds each; mean ± 95% CI on the test split.",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Show Ray's, Tune's and the workers' own output (default: a log file, named at the top).",
)
def run(
    space: Path,
    address: str | None,
    storage_path: str | None,
    resume: bool,
    confirm_text: str | None,
    verbose: bool,
) -> None:
    """Run the search described by SPACE and print the best recipe."""
    from minesearch import api
    from minesearch.search import SearchInterrupted

    view: ViewMode = "plain" if verbose else "live"  # plain: Ray's lines interleave with ours
    try:
        with _warnings_shown():
            outcome = api.run(
                space,
                address=address,
                storage_path=storage_path,
                resume=resume,
                confirm=confirm_text,
                verbose=verbose,
                view=view,
            )
    except api.InputError as exc:
        _fail(f"error: {exc}")
    except SearchInterrupted as exc:
        click.echo(
            f"interrupted; finished trials are kept, the others resume from their last "
            f"checkpoint with: minesearch run {space} --resume   (state: {exc.experiment_path})",
            err=True,
        )
        sys.exit(INTERRUPTED)
    present(outcome)
    if outcome.best is None:
        sys.exit(1)


def present(outcome: SearchOutcome) -> None:
    """What a finished search prints: the report, and where the best model went."""
    click.echo(outcome.text)
    if (done := outcome.exported) is not None:
        click.echo(f"the search's model, {done.what}: {done.path} (also in its MLflow run)")
        if done.model is not None:
            also = f"; registered as {done.model.registered}" if done.model.registered else ""
            click.echo(f"as an MLflow Model: mlflow.pyfunc.load_model({done.model.uri!r}){also}")


class _EchoWarnings(logging.Handler):
    """minesearch's logged warnings on stderr as `warning: ...` (looked up at each line, so that
    a live view, which redirects stderr, keeps them above it)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"warning: {record.getMessage()}", err=True)


@contextlib.contextmanager
def _warnings_shown() -> Iterator[None]:
    """The library's warnings shown while a command runs (the library itself prints nothing)."""
    handler = _EchoWarnings(logging.WARNING)
    package = logging.getLogger("minesearch")
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)


@main.command(name="catalog")
@click.option(
    "--weight-miners", is_flag=True, help="Show proxy losses with miners as allowed (converted)."
)
def catalog_command(weight_miners: bool) -> None:
    """Print the losses, miners, their parameters and the loss x miner compatibility matrix."""
    from minesearch.catalog import catalog_text

    click.echo(catalog_text(weight_miners))


@main.command(name="report")
@click.argument("target", required=False, metavar="[SPACE_OR_EXPERIMENT]")
@click.option("--run", "run_id", default=None, help="Parent run id (default: the newest search).")
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow store (default: the space file's, else MLFLOW_TRACKING_URI, else ./mlflow.db).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory for the plots (default: ./minesearch_report/<parent run id>/).",
)
@click.option(
    "--top", type=click.IntRange(min=1), default=5, show_default=True, help="Trials to list."
)
def report_command(
    target: str | None, run_id: str | None, tracking_uri: str | None, out: Path | None, top: int
) -> None:
    """Print a search's leaderboard and write its plots (also logged to its MLflow parent run)."""
    from minesearch import report
    from minesearch.config import SpecError
    from minesearch.tracking import StoreError

    if out is not None:
        _creatable_dir(out, "--out")
    try:
        experiment, uri = report.locate(target, tracking_uri)
        result = report.read_report(uri, experiment, run_id, top)
    except (SpecError, StoreError) as exc:
        _fail(f"error: {exc}")
    click.echo(report.format_report(result))
    parent_run_id = result.search.parent_run_id
    paths = report.write_plots(result, out or Path("minesearch_report") / parent_run_id)
    report.attach(result, paths)
    click.echo(f"\nplots (also in MLflow run {parent_run_id} under report/):")
    click.echo("\n".join(f"  {path}" for path in paths))
    for plot, reason in result.skipped.items():
        click.echo(f"  skipped {plot}: {reason}")


@main.command(name="ui")
@click.argument("space", required=False, type=click.Path(path_type=Path))
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow store (default: SPACE's tracking.uri, else MLFLOW_TRACKING_URI, else mlflow.db).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: a free one)."
)
def ui_command(space: Path | None, tracking_uri: str | None, host: str, port: int | None) -> None:
    """Serve the MLflow UI on the store a search used and print the URL of the newest search's
    runs; Ctrl+C stops it."""
    uri, search = _ui_store(space, tracking_uri)
    if uri.startswith(("http://", "https://")):  # a server already: nothing to start
        click.echo(_ui_url(uri.rstrip("/"), search))
        return
    _serve_ui(uri, host, port, search)


def _ui_store(space: Path | None, tracking_uri: str | None) -> tuple[str, SearchResult | None]:
    """The store to show (--tracking-uri, else the space file's, else the default) and its
    newest search (of the space's experiment, if a space is given); bad input exits 2."""
    from minesearch.config import SpecError, load_spec
    from minesearch.tracking import (
        StoreError,
        find_search,
        missing_store,
        read_search,
        resolve_tracking_uri,
    )

    try:
        spec = load_spec(space) if space is not None else None
    except SpecError as exc:
        _fail(f"error: {exc}")
    uri = resolve_tracking_uri(tracking_uri or (spec.tracking.uri if spec else None))
    if (path := missing_store(uri)) is not None:
        _fail(f"error: no MLflow store at {path} (give --tracking-uri or a space file)")
    try:
        return uri, read_search(uri, find_search(uri, spec.experiment if spec else None, None))
    except StoreError as exc:
        click.echo(f"no search to show: {exc}", err=True)
        return uri, None


def _serve_ui(uri: str, host: str, port: int | None, search: SearchResult | None) -> None:
    """`mlflow server` on the store until Ctrl+C or SIGTERM (exit 1 if it dies on its own)."""
    import signal
    import tempfile

    from minesearch.tracking import (
        ServerError,
        free_port,
        start_server,
        stop_group,
        wait_until_up,
    )

    chosen = port or free_port(host)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Ctrl+C: a shell's background job inherits SIGINT ignored; the UI must stop on it anyway
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="minesearch-ui-") as work:
        server = start_server(uri, host, chosen, Path(work))
        try:
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            wait_until_up(server, f"http://{shown}:{chosen}", Path(work))
            click.echo(f"MLflow UI on {uri} (Ctrl+C stops it):")
            click.echo(_ui_url(f"http://{shown}:{chosen}", search))
            server.wait()
            click.echo(f"mlflow server exited ({server.returncode})", err=True)
            sys.exit(1)
        except ServerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("stopping the MLflow UI")
        finally:
            stop_group(server)


def _ui_url(base: str, search: SearchResult | None) -> str:
    """The newest search's runs, best first; the UI's experiments when there is no search."""
    from minesearch.tracking import runs_url

    if search is None:
        return f"{base}/#/experiments?workflowType=machine_learning"
    metric = f"{SELECTED_PREFIX}{search.metric}"
    return runs_url(
        base, search.experiment_id, search.parent_run_id, metric, asc=search.mode == "min"
    )


def _stop_on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the server


@main.command(name="export")
@click.argument("ref", metavar="RUN_OR_TRIAL")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["torchscript", "onnx"]),
    default="torchscript",
    show_default=True,
    help="TorchScript (torch.jit.load) or ONNX (onnxruntime; pip install 'minesearch[export]').",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of the model and preprocess.json (default: ./minesearch_export/REF/FORMAT).",
)
@click.option(
    "--tracking-uri",
    default=None,
    help="MLflow store (default: MLFLOW_TRACKING_URI, else ./mlflow.db).",
)
def export_command(ref: str, fmt: str, out: Path | None, tracking_uri: str | None) -> None:
    """Export a model: RUN_OR_TRIAL is a child run id, a trial id, or `best` (the newest search's
    answer: its best trial, or the pretrained model when no recipe beat it)."""
    from minesearch.export import ExportError, export_run
    from minesearch.tracking import resolve_tracking_uri

    target = out or Path("minesearch_export") / ref / fmt
    _creatable_dir(target.parent, "--out")  # the export is renamed into place from beside it
    try:
        done = export_run(
            ref,
            "onnx" if fmt == "onnx" else "torchscript",
            target,
            resolve_tracking_uri(tracking_uri),
        )
    except ExportError as exc:
        _fail(f"error: {exc}")
    path = done.path
    click.echo(f"exported {done.what} to {path} (preprocessing: {path.parent / 'preprocess.json'})")
    click.echo(
        f"embed a Parquet file with: minesearch embed {path.parent} DATA.parquet OUT.parquet"
    )


@main.command(name="embed")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--input-column",
    default=None,
    help="Column to embed (default: the export's data column, else 'features').",
)
@click.option(
    "--input-type",
    type=click.Choice(INPUT_TYPES),
    default="auto",
    show_default=True,
    help="image: a string column holds image paths relative to DATA.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
def embed_command(
    model: Path,
    data: Path,
    out: Path,
    input_column: str | None,
    input_type: str,
    batch_size: int,
) -> None:
    """Embed DATA (Parquet) with MODEL (an export) into OUT: DATA's other columns + `embedding`."""
    from minesearch.export import EmbedError, ExportError, embed_parquet

    _creatable_dir(out.parent, "OUT")
    try:
        rows = embed_parquet(model, data, out, input_column, batch_size, input_type)
    except (EmbedError, ExportError) as exc:
        _fail(f"error: {exc}")
    click.echo(f"wrote {rows} embeddings to {out}")
