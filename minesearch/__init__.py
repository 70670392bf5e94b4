"""minesearch: find the metric-learning recipe that retrieves best on your data."""

from minesearch.spec import SpaceSpec, SpecError, load_spec

__all__ = ["SpaceSpec", "SpecError", "load_spec"]
__version__ = "0.1.0"
