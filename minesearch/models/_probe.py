"""The space's network built once where the command runs, and fed a sample batch of its data.

`minesearch validate` (and `run`, before Ray starts) asks this of a backbone that runs the user's
code (``python:``): its factory imports, returns a module and a width, and the module's output on
real rows has that width. Every other backbone is minesearch's own and is checked by name alone,
without torch (`config`); this check needs torch, so the CLI asks for it only when it must.
"""

from __future__ import annotations

import numpy as np
import torch

from minesearch.config import SpaceSpec
from minesearch.data import open_source
from minesearch.models._backbone import BackboneError
from minesearch.models._network import backbone_name, build_network

SAMPLE_ROWS = 2  # enough to show a batch axis; cheap for any model


def network_errors(spec: SpaceSpec) -> list[str]:
    """What stops the space's network from being built or from giving ``[B, out_dim]``."""
    source = open_source(spec)
    name = backbone_name(spec, source)
    try:
        network = build_network(spec, source)
    except BackboneError as err:  # its messages name the field and the value
        message = str(err)
        return [message if message.startswith(err.field) else f"{err.field}: {message}"]
    rows = np.arange(min(SAMPLE_ROWS, len(source)))
    batch = network.preprocess(source.take(rows), False)
    shape = list(batch.shape) if isinstance(batch, torch.Tensor) else sorted(batch)
    trunk, width = network.backbone.trunk.eval(), network.backbone.out_dim
    try:
        with torch.no_grad():
            out = trunk(batch)
    except Exception as err:  # the user's forward: whatever it raises is reported
        return [
            f"model.backbone {name!r}: its forward on a sample batch {shape} raised "
            f"{type(err).__name__}: {err}"
        ]
    expected = [len(rows), width]
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        what = f"a {out.dtype} tensor" if isinstance(out, torch.Tensor) else type(out).__name__
        return [
            f"model.backbone {name!r}: its forward returned {what}; it must return a float "
            f"tensor {expected}"
        ]
    if list(out.shape) != expected:
        return [
            f"model.backbone {name!r}: its forward on a sample batch {shape} returned "
            f"{list(out.shape)}, but the factory said out_dim {width}: expected {expected}"
        ]
    return []
