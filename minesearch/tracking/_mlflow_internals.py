"""MLflow's private hooks that minesearch cannot do without, in one place (mlflow 3.17.2).

`UntypedPredict`: `PythonModel.__init_subclass__` wraps a subclass's `predict` for input
validation by its type hints, and warns at class definition (on every import of
`tracking._model`, so on every `minesearch` command that logs a model) when `predict` has none,
unless the class sets `_skip_type_hint_validation` (MLflow's own ChatModel classes do). There is no
public switch: the hints that turn validation off (`pd.DataFrame`, `np.ndarray`) would each be
false for an embedder that takes vectors, image bytes and strings, and any other hint is read as
the model's signature, which minesearch infers from real rows instead.

`latest_schema_revision`: the alembic revision this MLflow migrates a SQLite store to. A new
store is made whole before anything may open it (`tracking._sqlite`), and a store another program
is making is waited for until it reaches this revision; MLflow names it only privately
(`mlflow.store.db.utils._get_latest_schema_revision`), as its own schema check does.

Re-check on an MLflow upgrade: run tests/tracking/test_mlflow_internals.py and
tests/tracking/test_sqlite.py, and read `PythonModel.__init_subclass__` in mlflow/pyfunc/model.py
and `_get_latest_schema_revision` in mlflow/store/db/utils.py. The model logging itself uses
MLflow's public client API only (`tracking._model`).
"""

from __future__ import annotations

import functools

# The attribute PythonModel.__init_subclass__ reads (mlflow/pyfunc/model.py).
SKIP_TYPE_HINT_VALIDATION = "_skip_type_hint_validation"


class UntypedPredict:
    """Mixin for a `PythonModel` whose `predict` is untyped on purpose: MLflow neither wraps it
    nor warns about it. List it before `PythonModel` among the bases."""

    _skip_type_hint_validation = True


@functools.cache
def latest_schema_revision() -> str:
    """The schema revision this MLflow writes a SQLite store at (MLflow's own check reads it)."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())
