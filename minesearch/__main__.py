"""`python -m minesearch` is the `minesearch` command."""

from minesearch.cli import entry

entry()
