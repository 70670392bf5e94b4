"""The `minesearch` command: thin over the library (validate, run).

Bad input exits with code 2 and a message naming the field and the allowed values, no traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from minesearch.confirm import ConfirmError, confirm_errors, parse_confirm
from minesearch.experiments import NothingToResume
from minesearch.search import ClusterTooSmall, SearchInterrupted, SearchOptions, run_search
from minesearch.spec import SpecError
from minesearch.validate import validated

BAD_INPUT = 2
INTERRUPTED = 130  # the shell's code for a command ended by SIGINT


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(BAD_INPUT)


@click.group()
@click.version_option(package_name="minesearch")
def main() -> None:
    """Find the metric-learning recipe that retrieves best on your data (Ray Tune, MLflow)."""


@main.command()
@click.argument("space", type=click.Path(path_type=Path))
def validate(space: Path) -> None:
    """Check SPACE (a space file) and its data; report every problem at once."""
    try:
        spec = validated(space)
    except SpecError as exc:
        _fail(f"error: {exc}")
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
def run(
    space: Path,
    address: str | None,
    storage_path: str | None,
    resume: bool,
    confirm_text: str | None,
) -> None:
    """Run the search described by SPACE and print the best recipe."""
    confirm = None
    try:
        spec = validated(space)
        if confirm_text is not None:
            confirm = parse_confirm(confirm_text)
            if problems := confirm_errors(spec):
                raise ConfirmError("\n".join(problems))
    except (SpecError, ConfirmError) as exc:
        _fail(f"error: {exc}")
    options = SearchOptions(
        address=address, storage_path=storage_path, resume=resume, confirm=confirm
    )
    try:
        summary = run_search(spec, space, options)
    except (ClusterTooSmall, NothingToResume) as exc:
        _fail(f"error: {exc}")
    except SearchInterrupted as exc:
        click.echo(
            f"interrupted; finished trials are kept, the others resume from their last "
            f"checkpoint with: minesearch run {space} --resume   (state: {exc.experiment_path})",
            err=True,
        )
        sys.exit(INTERRUPTED)
    click.echo(summary.format())
    if summary.best is None:
        sys.exit(1)


@main.command(name="catalog")
@click.option(
    "--weight-miners", is_flag=True, help="Show proxy losses with miners as allowed (converted)."
)
def catalog_command(weight_miners: bool) -> None:
    """Print the losses, miners, their parameters and the loss x miner compatibility matrix."""
    from minesearch.catalog_view import catalog_text

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

    try:
        experiment, uri = report.locate(target, tracking_uri)
        result = report.build_report(uri, experiment, run_id, top)
    except (SpecError, report.ReportError) as exc:
        _fail(f"error: {exc}")
    click.echo(report.format_leaderboard(result))
    paths = report.write_plots(result, out or Path("minesearch_report") / result.parent_run_id)
    report.attach(result, paths)
    click.echo(f"\nplots (also in MLflow run {result.parent_run_id} under report/):")
    click.echo("\n".join(f"  {path}" for path in paths))
    for plot, reason in result.skipped.items():
        click.echo(f"  skipped {plot}: {reason}")


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
    """Export a trial's model: RUN_OR_TRIAL is a child run id, a trial id, or `best`."""
    from minesearch.export import ExportError, export_run
    from minesearch.tracking import resolve_tracking_uri

    target = out or Path("minesearch_export") / ref / fmt
    try:
        path = export_run(
            ref,
            "onnx" if fmt == "onnx" else "torchscript",
            target,
            resolve_tracking_uri(tracking_uri),
        )
    except ExportError as exc:
        _fail(f"error: {exc}")
    click.echo(f"exported {ref} to {path} (preprocessing: {path.parent / 'preprocess.json'})")
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
    type=click.Choice(["auto", "vector", "image", "text"]),
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
    from minesearch.embed import EmbedError, embed_parquet
    from minesearch.export import ExportError

    try:
        rows = embed_parquet(model, data, out, input_column, batch_size, input_type)
    except (EmbedError, ExportError) as exc:
        _fail(f"error: {exc}")
    click.echo(f"wrote {rows} embeddings to {out}")
