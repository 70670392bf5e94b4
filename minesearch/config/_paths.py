"""Paths in a space file mean paths next to it, wherever the command is run from.

`minesearch run search_spaces/x.yaml` from the repository and `minesearch run x.yaml` from
search_spaces/ must read the same data and write the same store: relative `data.path`,
`data.cache_dir`, `storage_path`, a relative SQLite `tracking.uri` and the file of a
`python:<file.py>:<function>` backbone are made absolute against
the space file's directory when the file is loaded (URIs such as s3:// stay as given). The
resolved spec then carries absolute paths to every process (Ray changes the working directory),
and a missing path is reported as the absolute path that was tried.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from minesearch.config.vocab import python_target

SQLITE = "sqlite:///"


def is_uri(path: str) -> bool:
    """A URI (s3://, gs://, sqlite:///, http://) rather than a path on this machine."""
    return "://" in path


def with_paths_resolved(raw: Any, base: Path) -> Any:
    """`raw` (the file's YAML) with its relative paths made absolute against `base`; anything
    that is not where or what a path would be is left for validation to report."""
    if not isinstance(raw, dict):
        return raw
    raw = copy.deepcopy(raw)
    data = raw.get("data")
    if isinstance(data, dict):
        for key in ("path", "cache_dir"):
            data[key] = _path(data.get(key), base)
    if "storage_path" in raw:
        raw["storage_path"] = _path(raw["storage_path"], base)
    tracking = raw.get("tracking")
    if isinstance(tracking, dict) and isinstance(uri := tracking.get("uri"), str):
        tracking["uri"] = _uri(uri, base)
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(backbone := model.get("backbone"), str):
        target = python_target(backbone)
        if target is not None and target[0].endswith(".py"):
            model["backbone"] = f"python:{_path(target[0], base)}:{target[1]}"
    return raw


def _path(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or not value or is_uri(value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _uri(uri: str, base: Path) -> str:
    """A relative SQLite store (sqlite:///x.db; sqlite://// is absolute) next to the file."""
    if uri.startswith(SQLITE) and not uri.startswith(SQLITE + "/"):
        return f"{SQLITE}{(base / uri.removeprefix(SQLITE)).resolve()}"
    return uri
