"""huggingface_hub's offline switch: minesearch's one private use of that library, kept here.

`timm.create_model(pretrained=True)` fetches weights through huggingface_hub and has no
``local_files_only``; a download in the middle of a search must not happen (`_backbones`). The
public switch, the ``HF_HUB_OFFLINE`` environment variable, is read once, when huggingface_hub is
imported, into ``huggingface_hub.constants.HF_HUB_OFFLINE``; every request then asks the public
``huggingface_hub.is_offline_mode()``, which returns that global (checked on huggingface_hub 2.4).
A worker may have imported the library long before a timm backbone is built, so the variable
cannot be set in time: the global is set for the duration of the call instead.
`tests/models/test_hf_hub.py` fails, naming the symbol, when an upgrade changes any of this.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["hub_offline"]


@contextmanager
def hub_offline() -> Iterator[None]:
    """huggingface_hub refuses the network for the duration; files already cached still load."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved
