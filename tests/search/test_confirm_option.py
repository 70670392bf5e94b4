"""`--confirm K,S`: what the option accepts."""

from __future__ import annotations

import pytest

from minesearch.search import ConfirmError, parse_confirm


def test_parse_confirm() -> None:
    assert parse_confirm("3,5") == (3, 5)
    for bad in ("3", "3,5,1", "a,b", "0,5", "3,1", ""):
        with pytest.raises(ConfirmError, match="--confirm"):
            parse_confirm(bad)
