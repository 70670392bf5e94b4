"""minesearch: find the metric-learning recipe that retrieves best on your data.

The package is organised in rooms, one concept each; docs/architecture.md describes them, what
flows between them and which process runs each. Importing `minesearch` itself loads nothing.
"""

__version__ = "0.1.0"
