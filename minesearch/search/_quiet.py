"""Ray's own output into a log file, so that a search's terminal shows the view and the result.

Ray, Tune and Train talk a lot: status tables, each trial's config, the workers' stdout and
stderr (Train's "Reporting training result", faiss's CPU probe, PML), token and placement-group
notices. Quiet (the default) sends all of it to one file in the search's directory, named in the
view's header; `--verbose` leaves Ray's output where Ray puts it. What the user must see (a failed
trial's reason, a resume) is shown by the view and the CLI, not by Ray.

Two streams are moved: the driver's Python loggers of Ray (and MLflow's store notices), and the
lines of the workers that Ray forwards to the driver (`log_to_driver`): Ray prints those through
a handler of its stdstream dispatcher, which is replaced by one that writes to the file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from minesearch.tracking import environment

# The Python loggers whose records go to the file: Ray's (Tune and Train are below "ray") and
# MLflow's notices about creating and migrating a store.
LOGGERS = ("ray", "mlflow")
RAY_PRINT_HANDLER = "ray_print_logs"  # the name ray.init gives its worker-log printer
OWN_HANDLER = "minesearch_log_file"
# Tune's new console output prints its configuration box, the results path and a TensorBoard hint
# at the start of every fit whatever the verbosity (ray/tune/experimental/output.py,
# experiment_started); the legacy reporter prints nothing at verbose=0. Read by Tuner.fit.
QUIET_ENV = {"RAY_AIR_NEW_OUTPUT": "0"}


def log_file_for(directory: Path | None, name: str) -> Path:
    """The search's log: in its directory; a temp directory when its storage is a URI."""
    if directory is not None:
        return directory / "ray.log"
    import tempfile

    return Path(tempfile.gettempdir()) / "minesearch" / f"{name}.log"


class RayOutput:
    """Ray's output going to one file; `divert_workers` once Ray is up takes the workers' lines
    there too."""

    def __init__(self, sink: TextIO | None) -> None:
        self.sink = sink
        self.diverted: list[tuple[str, Callable[[dict[str, Any]], None]]] = []

    def divert_workers(self) -> None:
        """The workers' forwarded lines to the file instead of the driver's stdout/stderr.

        ray.init registers its printer with Ray's stdstream dispatcher (a private API: Ray has no
        public switch short of log_to_driver=False, which must be chosen before Ray starts, is
        not ours when a test or a job started Ray, and leaves a failing worker's output only in
        Ray's session directory). The printer is swapped for a writer to the file, and put
        back on the way out."""
        if self.sink is None or self.diverted:
            return
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

        sink = self.sink

        def write(data: dict[str, Any]) -> None:
            who = data.get("actor_name") or data.get("task_name") or "worker"
            prefix = f"({who} pid={data.get('pid')}) "
            sink.write("".join(f"{prefix}{line}\n" for line in data.get("lines", [])))
            sink.flush()

        with dispatcher._lock:
            self.diverted = [pair for pair in dispatcher.handlers if pair[0] == RAY_PRINT_HANDLER]
            kept = [pair for pair in dispatcher.handlers if pair[0] != RAY_PRINT_HANDLER]
            dispatcher.handlers = [*kept, (OWN_HANDLER, write)]

    def restore_workers(self) -> None:
        if self.sink is None:
            return
        from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher

        with dispatcher._lock:
            kept = [pair for pair in dispatcher.handlers if pair[0] != OWN_HANDLER]
            dispatcher.handlers = [*kept, *self.diverted]
        self.diverted = []


@contextlib.contextmanager
def ray_output_to(log_file: Path | None) -> Iterator[RayOutput]:
    """While inside, Ray's driver-side logs go to `log_file` (None: where Ray puts them, for
    --verbose); start Ray inside, then call `divert_workers` on what it yields."""
    if log_file is None:
        yield RayOutput(None)
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("a", encoding="utf-8") as sink, environment(QUIET_ENV):
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        saved = [(logger, logger.handlers[:], logger.propagate) for logger in map(_get, LOGGERS)]
        for logger, _, _ in saved:
            logger.handlers = [handler]
            logger.propagate = False
        output = RayOutput(sink)
        try:
            yield output
        finally:
            output.restore_workers()
            for logger, handlers, propagate in saved:
                logger.handlers = handlers
                logger.propagate = propagate


def _get(name: str) -> logging.Logger:
    return logging.getLogger(name)
