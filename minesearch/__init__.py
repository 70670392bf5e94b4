"""minesearch: find the metric-learning recipe that retrieves best on your data.

    import minesearch
    outcome = minesearch.run("search_spaces/quickstart.yaml")  # or a dict, or a SpaceSpec
    outcome.best, outcome.verdict, outcome.parent_run_id, print(outcome.text)

`run` is `minesearch run` from Python (`minesearch.api`); it prints nothing unless given a `view`.
The package is organised in rooms, one concept each; docs/architecture.md describes them, what
flows between them and which process runs each. Importing `minesearch` itself loads nothing: the
names below load on first use.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"


def lazy_attributes(
    package: str, homes: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's PEP 562 `__getattr__` and `__dir__`: each public name of `homes` (name -> the
    module defining it) is imported on first use, then kept as a plain attribute. Rooms whose
    modules a lighter process must not pay for (a Tune trial process unpickling one function) use
    it instead of importing every module in their `__init__`."""

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted([*vars(sys.modules[package]), *homes])

    return getattr_, dir_


# The Python API, loaded on first use (no import here: the rooms import this module's helper)
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "run": "minesearch.api",
        "SearchOutcome": "minesearch.api",
        "InputError": "minesearch.api",
        "SearchInterrupted": "minesearch.search",
    },
)

__all__ = ["InputError", "SearchInterrupted", "SearchOutcome", "lazy_attributes", "run"]
