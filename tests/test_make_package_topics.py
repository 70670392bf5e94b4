"""scripts/make_package_topics.py: each of its rules on a hand-made Packages index, and the shipped
package_topics.parquet as the script writes it from this machine's apt index."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_package_topics.py"
SHIPPED = REPO / "search_spaces" / "data" / "package_topics.parquet"


def stanza(package: str, section: str, description: str, source: str | None = None) -> str:
    lines = [f"Package: {package}"]
    if source:
        lines.append(f"Source: {source} (1.0-1)")
    lines += [f"Description: {description}", "Tag: role::program,", " use::editing"]
    return "\n".join([*lines, f"Section: {section}", "Priority: optional"])


INDEX = "\n\n".join(
    [
        stanza("ed", "editors", "classic line editor"),
        stanza("ed-extra", "editors", "extra scripts for ed", source="ed"),  # rule 3: sibling
        stanza("vim", "editors", "Vi IMproved"),
        stanza("nvim", "editors", "vi improved"),  # rule 4: same text, same section
        stanza("nano", "editors", "small friendly text editor"),
        stanza("old-nano", "editors", "transitional package for nano"),  # rule 1
        stanza("nano-dbg", "editors", "debugging symbols for nano"),  # rule 1
        stanza("emacs", "editors", "GNU Emacs editor"),
        stanza("emacs-bin", "utils", "GNU Emacs editor"),  # rule 4: two sections
        stanza("libfoo1", "libs", "a foo library"),  # rule 2
        stanza("grep", "utils", "search files for patterns"),
        stanza("sed", "utils", "stream editor"),
        stanza("xterm", "x11", "terminal emulator"),  # rule 5: too few
    ]
)


def test_each_rule_on_a_hand_made_index() -> None:
    script = load_script(SCRIPT)
    assert script.candidates(INDEX) == {
        "editors": [
            ("ed", "classic line editor"),
            ("nano", "small friendly text editor"),
            ("nvim", "vi improved"),
        ],
        "utils": [("grep", "search files for patterns"), ("sed", "stream editor")],
        "x11": [("xterm", "terminal emulator")],
    }
    rows = script.make_rows(INDEX, seed=0, per_class=2)
    assert Counter(label for _, label, _ in rows) == {"editors": 2, "utils": 2}
    assert rows == script.make_rows(INDEX, seed=0, per_class=2)  # seeded
    draws = {tuple(script.make_rows(INDEX, seed=s, per_class=2)) for s in range(20)}
    assert len(draws) > 1  # the seed does draw


def test_the_shipped_file_has_the_promised_shape() -> None:
    table = pq.read_table(SHIPPED)
    assert table.column_names == ["text", "label", "package"]
    assert SHIPPED.stat().st_size < 300_000
    counts = Counter(table.column("label").to_pylist())
    assert len(counts) >= 40 and set(counts.values()) == {50}
    script = load_script(SCRIPT)
    assert not set(counts) & script.ROLE_SECTIONS
    texts = table.column("text").to_pylist()
    assert len({t.casefold() for t in texts}) == len(texts)
    assert not any(script.BOILERPLATE.search(t) for t in texts)


def test_the_script_regenerates_the_shipped_file(tmp_path: Path) -> None:
    """Only against the apt index it was built from: `apt-get update` replaces that file."""
    script = load_script(SCRIPT)
    meta = json.loads(pq.read_schema(SHIPPED).metadata[script.META_KEY])
    if not script.SOURCE.exists():
        pytest.skip(f"no apt index at {script.SOURCE}")
    index = script.read_index(script.SOURCE)
    if hashlib.sha256(index.encode()).hexdigest() != meta["source_sha256"]:
        pytest.skip("this machine's apt index is not the one the shipped file was built from")
    out = tmp_path / "package_topics.parquet"
    script.write(out)
    assert pq.read_table(out).equals(pq.read_table(SHIPPED))
