"""huggingface_hub's offline switch (`minesearch.models._hf_hub`), against the installed library.

minesearch sets ``huggingface_hub.constants.HF_HUB_OFFLINE`` while timm builds a backbone, and
relies on huggingface_hub asking that global on every request. Each test fails with a message
naming the symbol when an upgrade moves or stops reading it: timm could then download in the
middle of a search.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from minesearch.models._hf_hub import hub_offline

hub = pytest.importorskip("huggingface_hub")
UPGRADE = f"(huggingface_hub {hub.__version__}: see minesearch/models/_hf_hub.py)"


def test_the_offline_global_exists() -> None:
    from huggingface_hub import constants

    assert isinstance(getattr(constants, "HF_HUB_OFFLINE", None), bool), (
        f"huggingface_hub.constants.HF_HUB_OFFLINE is gone or not a bool {UPGRADE}"
    )


@pytest.mark.parametrize("before", [False, True])
def test_offline_while_inside_and_restored_after(
    before: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", before)
    with hub_offline():
        assert hub.is_offline_mode(), (
            f"huggingface_hub.is_offline_mode() no longer reads constants.HF_HUB_OFFLINE {UPGRADE}"
        )
    assert constants.HF_HUB_OFFLINE is before
    with pytest.raises(KeyError), hub_offline():
        raise KeyError("a failed build")
    assert constants.HF_HUB_OFFLINE is before


def test_requests_are_refused_without_touching_the_network() -> None:
    """The hub's HTTP session raises before connecting (no network is needed for this test)."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    started = time.monotonic()
    with hub_offline(), pytest.raises(OfflineModeIsEnabled):
        hub.get_session().get("https://huggingface.co/api/models/timm/resnet18.a1_in1k")
    assert time.monotonic() - started < 5, (
        f"huggingface_hub.get_session() no longer checks is_offline_mode() first {UPGRADE}"
    )


def test_a_download_from_an_empty_cache_fails_fast(tmp_path: Path) -> None:
    """What timm does with pretrained=True: hf_hub_download, which must not reach the hub."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    started = time.monotonic()
    with hub_offline(), pytest.raises((LocalEntryNotFoundError, OfflineModeIsEnabled)):
        hub.hf_hub_download("timm/resnet18.a1_in1k", "model.safetensors", cache_dir=tmp_path)
    assert time.monotonic() - started < 5, f"hf_hub_download waited on the network {UPGRADE}"
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "hf_hub_download wrote files"
