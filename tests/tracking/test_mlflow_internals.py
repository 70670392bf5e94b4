"""MLflow's private hooks behind `minesearch.tracking._mlflow_internals` still work as it says:
each test names the symbol and the installed MLflow when it does not (a loud upgrade)."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

from minesearch.tracking import EmbeddingModel
from minesearch.tracking._mlflow_internals import SKIP_TYPE_HINT_VALIDATION, UntypedPredict

CHECKED_ON = "3.17.2"


def upgraded(symbol: str, what: str) -> str:
    return (
        f"mlflow {mlflow.__version__} (checked on {CHECKED_ON}): {symbol} {what}; "
        "re-check minesearch/tracking/_mlflow_internals.py"
    )


def define(*bases: type) -> tuple[type, list[str]]:
    """A PythonModel subclass with an untyped predict, and the warnings its definition raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class Untyped(*bases):  # type: ignore[misc]
            def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
                return model_input

    return Untyped, [str(w.message) for w in caught]


def test_python_model_still_reads_the_skip_flag() -> None:
    symbol = f"PythonModel.__init_subclass__'s {SKIP_TYPE_HINT_VALIDATION}"
    source = inspect.getsource(PythonModel.__init_subclass__)
    assert SKIP_TYPE_HINT_VALIDATION in source, upgraded(symbol, "is no longer read")
    assert getattr(UntypedPredict, SKIP_TYPE_HINT_VALIDATION, None) is True, (
        f"UntypedPredict does not set {SKIP_TYPE_HINT_VALIDATION}"
    )


def test_without_the_flag_mlflow_warns_and_wraps_predict() -> None:
    """What the flag is for: if MLflow stops warning, the mixin may have become unnecessary."""
    plain, said = define(PythonModel)
    symbol = "PythonModel.__init_subclass__"
    assert any("type hints" in message for message in said), upgraded(
        symbol, f"no longer warns about an untyped predict (warned: {said})"
    )
    assert getattr(plain.predict, "_is_pyfunc", False), upgraded(symbol, "no longer wraps predict")


def test_with_the_flag_predict_is_left_alone_and_nothing_is_said() -> None:
    quiet, said = define(UntypedPredict, PythonModel)
    symbol = f"PythonModel.{SKIP_TYPE_HINT_VALIDATION}"
    assert said == [], upgraded(symbol, f"no longer silences the untyped predict: {said}")
    assert quiet.__dict__["predict"].__qualname__.endswith("Untyped.predict"), upgraded(
        symbol, "no longer keeps predict unwrapped"
    )
    assert not getattr(quiet.predict, "_is_pyfunc", False)


def test_the_embedding_model_uses_the_mixin() -> None:
    model: Any = EmbeddingModel
    assert issubclass(model, UntypedPredict) and issubclass(model, PythonModel)
    assert not getattr(model.predict, "_is_pyfunc", False)
