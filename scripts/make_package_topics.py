"""Write search_spaces/data/package_topics.parquet: Debian package descriptions labelled by section.

    python scripts/make_package_topics.py                 # from this machine's bookworm index
    python scripts/make_package_topics.py --source PATH   # a Packages file: .lz4, .gz, .xz, plain
    python scripts/make_package_topics.py --out X         # write elsewhere

Why this set: a realistic text retrieval task that nobody wrote by hand. The text is a package's
one-line `Description`, the label its archive `Section` (games, sound, science, mail, ...): real
short texts by thousands of authors, with label noise and classes that overlap (a Python astronomy
library is in `python`, a C one in `science`), on which a pretrained sentence encoder is decent and
far from perfect. The shipped `text_topics` (560 templated sentences) is too easy to set ranges on.

Rules, each for a reason:

1. Boilerplate out: descriptions naming a transitional or dummy package or debug symbols
   (`BOILERPLATE`) say what the package is for the archive, not what it is about.
2. Sections that name a packaging role rather than a topic out (`ROLE_SECTIONS`): the catch-all
   `misc`; `oldlibs`, `debug`, `metapackages`, `tasks` (archive mechanics); `libs`, `libdevel`,
   `doc`, `introspection` (runtime libraries, headers, documentation and GObject typelibs of
   software of *every* topic: their descriptions are "<topic> - development files", so the label
   would be the suffix, and the topic would be split between them and its own section).
3. One text per source package and section: a source's binaries (foo, foo-data, foo-common) have
   near-identical descriptions, and a query would find its sibling instead of its topic. The first
   binary by package name is kept.
4. Identical descriptions (case-folded) once: a description found in two sections is dropped (it
   cannot have one right label), one found twice in a section is kept once.
5. Sections with at least `PER_CLASS` texts left, `PER_CLASS` of each drawn with a seeded
   ``random.Random``: balanced classes, as a class-balanced sampler and MAP@R assume. 50 a class
   keeps 42 sections (60 would keep 40), 2,100 texts: a MiniLM epoch on the training classes stays
   well under a minute on 2 CPU cores, which a sweep of dozens of fine-tunes needs.

Deterministic for a given Packages file: its SHA-256 (decompressed) is written into the Parquet
metadata, with the rules' constants. `apt-get update` replaces the index, so regenerating on a
later day gives a different (equally valid) draw; the shipped file is the record.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import lzma
import random
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "search_spaces" / "data" / "package_topics.parquet"
SOURCE = Path(
    "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
)
SEED = 20250711
PER_CLASS = 50
BOILERPLATE = re.compile(r"transitional|dummy|debug(ging)? symbols", re.IGNORECASE)
ROLE_SECTIONS = frozenset(
    {"misc", "oldlibs", "debug", "metapackages", "tasks"}  # archive mechanics
    | {"libs", "libdevel", "doc", "introspection"}  # a part of software of any topic
)
META_KEY = b"package_topics"


def read_index(path: Path) -> str:
    """The Packages file as text; apt's .lz4 through apt-helper (Python ships no lz4)."""
    if path.suffix == ".lz4":
        helper = ["/usr/lib/apt/apt-helper", "cat-file", str(path)]
        return subprocess.run(helper, capture_output=True, check=True).stdout.decode()
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode()
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes()).decode()
    return path.read_text()


def stanzas(index: str) -> Iterator[dict[str, str]]:
    """The top-level fields of each stanza (continuation lines, as in `Tag:`, are skipped)."""
    for block in index.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Package" in fields and "Section" in fields and fields.get("Description"):
            yield fields


def candidates(index: str) -> dict[str, list[tuple[str, str]]]:
    """Section -> its (package, description) candidates after rules 1 to 4, by package name."""
    kept = sorted(
        (s["Package"], s.get("Source", s["Package"]).split()[0], s["Section"], s["Description"])
        for s in stanzas(index)
        if s["Section"] not in ROLE_SECTIONS and not BOILERPLATE.search(s["Description"])
    )
    sections_of: dict[str, set[str]] = defaultdict(set)
    for _, _, section, text in kept:
        sections_of[text.casefold()].add(section)
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    sources: set[tuple[str, str]] = set()  # (section, source) already taken
    texts: set[str] = set()  # descriptions already taken (each has one section by now)
    for package, source, section, text in kept:
        key = text.casefold()
        if len(sections_of[key]) > 1 or (section, source) in sources or key in texts:
            continue
        sources.add((section, source))
        texts.add(key)
        out[section].append((package, text))
    return dict(out)


def make_rows(index: str, seed: int = SEED, per_class: int = PER_CLASS) -> list[tuple[str, ...]]:
    """(text, label, package) rows: `per_class` per kept section, sections in name order."""
    rng = random.Random(seed)
    rows: list[tuple[str, ...]] = []
    for section, pool in sorted(candidates(index).items()):
        if len(pool) >= per_class:
            drawn = sorted(rng.sample(pool, per_class))
            rows.extend((text, section, package) for package, text in drawn)
    return rows


def write(
    out: Path, source: Path = SOURCE, seed: int = SEED, per_class: int = PER_CLASS
) -> pa.Table:
    """Write the Parquet file; the same index, seed and code give the same rows, same order."""
    index = read_index(source)
    rows = make_rows(index, seed, per_class)
    columns = ("text", "label", "package")
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(columns)})
    meta = {
        "source": source.name,
        "source_sha256": hashlib.sha256(index.encode()).hexdigest(),
        "seed": seed,
        "per_class": per_class,
        "role_sections": sorted(ROLE_SECTIONS),
        "boilerplate": BOILERPLATE.pattern,
    }
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="a Packages file")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--per-class", type=int, default=PER_CLASS)
    args = parser.parse_args()
    table = write(args.out, args.source, args.seed, args.per_class)
    classes = len(set(table.column("label").to_pylist()))
    print(f"wrote {table.num_rows} rows, {classes} classes to {args.out}")


if __name__ == "__main__":
    main()
