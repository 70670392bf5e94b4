"""What the space's data section and backbone must agree on, checked before anything loads.

Apart from spec.py (the file's shape) because it is about *meaning*: which sources need a path,
which input kind each source gives, and whether the backbone reads that kind. `validate.py`
repeats the backbone check once the data is open and its kind is known (a Parquet column's
`auto` type).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minesearch.spec import DataSpec, SpaceSpec


def path_errors(data: DataSpec) -> list[str]:
    path, source = data.path, data.source
    if source in ("parquet", "image_folder") and not path:
        what = "a Parquet file, a directory of them or a URI" if source == "parquet" else "root"
        return [f"data.path: source {source!r} needs data.path ({what})"]
    if source in ("digits", "text_topics") and path:
        return [f"data.path: only used with source 'parquet' or 'image_folder', not {source!r}"]
    if path and "://" not in path and not Path(path).exists():
        return [f"data.path: not found (given {path!r})"]
    return []


SOURCE_KINDS = {"digits": "tensor", "image_folder": "image", "text_topics": "text"}
PARQUET_KINDS = {"vector": "tensor", "image": "image", "text": "text"}


def data_kind(spec: SpaceSpec) -> str | None:
    """The input kind the data gives, when the file alone tells (not for parquet `auto`)."""
    d = spec.data
    if d.source == "parquet":
        return PARQUET_KINDS.get(d.input_type)
    return SOURCE_KINDS[d.source]


def backbone_errors(spec: SpaceSpec, kind: str | None = None) -> list[str]:
    """A backbone name that does not exist, or that cannot read the data's kind of input."""
    from minesearch.backbones import BackboneError, backbone_input_kinds

    name = spec.model.backbone
    if name == "auto":
        if (kind or data_kind(spec)) == "text":
            return [
                "model.backbone: text needs a text encoder: minilm, hf:<dir-or-name> or "
                "sentence-transformers:<dir-or-name>"
            ]
        return []
    try:
        kinds = backbone_input_kinds(name)
    except BackboneError as exc:
        return [f"model.backbone: {exc}"]
    kind = kind or data_kind(spec)
    if kind is not None and kind not in kinds:
        return [
            f"model.backbone: {name!r} reads {', '.join(kinds)} inputs, but data "
            f"(source {spec.data.source!r}) gives {kind}"
        ]
    return []
