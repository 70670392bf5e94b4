"""Plain-text rendering of the catalog for `minesearch catalog`.

A space file is written against these names, parameters and ranges, so the command shows exactly
what the registry holds (nothing is kept here) and fits a 100-column terminal: long notes wrap and
the compatibility matrix numbers its miner columns, with a key.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

from minesearch.catalog._entries import LOSSES, MINER_NAMES, MINERS
from minesearch.catalog._lookup import compatibility
from minesearch.catalog._types import NO_MINER, ParamInfo

WIDTH = 100
CELL = {"native": "N", "converted": "C", "invalid": "-"}
LOSS_KINDS = {
    "triplets": "takes triplets (pairs are joined into triplets)",
    "pairs": "takes pairs (triplets are split into pairs)",
    "weights": "turns a miner's output into sample weights",
    "none": "rejects miner output",
}


def catalog_text(weight_miners: bool = False) -> str:
    """The losses, the miners and the loss x miner compatibility matrix, as one text."""
    sections = [_losses_text(), _miners_text(), _matrix_text(weight_miners)]
    return "\n\n".join(sections) + "\n"


def _losses_text() -> str:
    lines = [f"LOSSES ({len(LOSSES)})", *_wrap("kinds: " + _kinds_legend(), 2)]
    lines.append(_row("name", "kind", "trainable", "distance"))
    for name, info in LOSSES.items():
        lines.append(_row(name, info.consumes, "yes" if info.trainable else "-", info.distance))
        lines += _params_lines(info.params)
        if info.note:
            lines += _wrap(f"note: {info.note}", 6)
    return "\n".join(lines)


def _miners_text() -> str:
    count = len(MINERS)
    lines = [f"MINERS ({count}; '{NO_MINER}' = all pairs/triplets of the batch)"]
    lines.append(_row("name", "emits", "", "distance"))
    for name, info in MINERS.items():
        lines.append(_row(name, info.emits, "", info.distance))
        lines += _params_lines(info.params)
    return "\n".join(lines)


def _row(name: str, kind: str, trainable: str, distance: str) -> str:
    return f"  {name:<{_name_width()}} {kind:<9} {trainable:<10} {distance}"


def _params_lines(params: Mapping[str, ParamInfo]) -> list[str]:
    lines = []
    for name, info in params.items():
        lines.append(f"      {name:<20} {info.default!s:<8} {_range_text(info)}".rstrip())
        if info.default_note:
            lines += _wrap(f"default: {info.default_note}", 29)
    return lines


def _range_text(info: ParamInfo) -> str:
    """`[0, 1]`, `(0, inf)`, `[1, inf) integer` or `one of a, b, c`."""
    if info.choices is not None:
        return "one of " + ", ".join(info.choices)
    low = "(-inf" if info.low is None else f"{'(' if info.low_open else '['}{info.low:g}"
    high = "inf)" if info.high is None else f"{info.high:g}{')' if info.high_open else ']'}"
    return f"{low}, {high}" + (" integer" if info.integer else "")


def _matrix_text(weight_miners: bool) -> str:
    """Rows are losses, columns are miners by number (names are too long for a header)."""
    miners = MINER_NAMES
    key = "  ".join(f"{i}={name}" for i, name in enumerate(miners))
    header = "".join(f"{i:>3}" for i in range(len(miners)))
    lines = ["COMPATIBILITY (rows: losses, columns: miners)", *_wrap(f"columns: {key}", 2)]
    lines += _wrap(_cells_legend(weight_miners), 2)
    lines.append(f"  {'':<{_name_width()}}{header}")
    for loss in LOSSES:
        cells = "".join(f"{CELL[compatibility(loss, m, weight_miners)]:>3}" for m in miners)
        lines.append(f"  {loss:<{_name_width()}}{cells}")
    return "\n".join(lines)


def _cells_legend(weight_miners: bool) -> str:
    weights = (
        "a weights loss with a miner is C (search.weight_miners is on)"
        if weight_miners
        else "a weights loss with a miner is - unless search.weight_miners is on "
        "(minesearch catalog --weight-miners)"
    )
    return (
        "N native (the loss takes what the miner emits), C converted (PML converts the "
        f"miner's output), - invalid (never proposed); {weights}"
    )


def _kinds_legend() -> str:
    return "; ".join(f"{kind}: {meaning}" for kind, meaning in LOSS_KINDS.items())


def _name_width() -> int:
    return max(len(name) for name in [*LOSSES, *MINERS])


def _wrap(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return textwrap.wrap(
        text, WIDTH, initial_indent=pad, subsequent_indent=pad + "  ", break_on_hyphens=False
    )
