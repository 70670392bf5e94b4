"""Every loss of the catalog builds, and computes, on the network each shipped space trains; and
what `minesearch validate` accepts, a worker can build (in process, no Ray).

A proxy or classification loss owns weights of the embedding's width. That width is the built
network's (`model.embedding_dim`, else the backbone's own for the heads that keep it), never the
space file's `embedding_dim` alone: when it was, `vectors.yaml` validated and then every trial of
ProxyAnchorLoss failed with "needs embedding_size".
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from minesearch import catalog
from minesearch.cli import validated
from minesearch.config import SpaceSpec, as_choices
from minesearch.data import open_source
from minesearch.models import build_network
from minesearch.recipe import Recipe
from minesearch.train import build_state

ROOT = Path(__file__).resolve().parents[2]
SPACES = sorted((ROOT / "search_spaces").glob("*.yaml"))


def space(path: Path, monkeypatch: pytest.MonkeyPatch) -> SpaceSpec:
    monkeypatch.chdir(ROOT)  # shipped spaces name their data relative to the repository
    return validated(path.relative_to(ROOT))


def heads_of(spec: SpaceSpec) -> list[str]:
    return list(dict.fromkeys([spec.model.head, *as_choices(spec.search.params.get("head"), [])]))


def defaults(loss: str) -> dict[str, object]:
    return {name: info.default for name, info in catalog.loss_info(loss).params.items()}


def batch_for(loss: str, spec: SpaceSpec) -> tuple[int, int]:
    """A batch shape the loss computes correctly on: the space's, else one its rule accepts."""
    batch = spec.train.batch
    if catalog.batch_error(loss, batch.classes, batch.per_class) is None:
        return batch.classes, batch.per_class
    return next(
        (c, p)
        for c in range(2, 33)
        for p in range(2, 33)
        if catalog.batch_error(loss, c, p) is None
    )


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_every_catalog_loss_builds_and_computes_on_the_spaces_network(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = space(path, monkeypatch)
    source = open_source(spec)
    for head in heads_of(spec):
        network = build_network(spec, source, head if head != "auto" else None)
        width = network.embedding_dim
        for loss_name in catalog.LOSSES:
            classes, per_class = batch_for(loss_name, spec)
            loss, _ = Recipe(loss=loss_name, loss_params=defaults(loss_name)).build(classes, width)
            labels = torch.arange(classes).repeat_interleave(per_class)
            embeddings = torch.nn.functional.normalize(
                torch.randn(len(labels), width, generator=torch.Generator().manual_seed(0)), dim=1
            ).requires_grad_()
            value = loss(embeddings, labels)
            assert torch.isfinite(value), f"{path.name}, head {head}: {loss_name} gave {value}"


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_what_validate_accepts_a_worker_builds(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each loss the space may propose, with each head it may propose, builds a worker's state
    (the network, the loss sized to it, the optimiser over both) exactly as a trial would."""
    spec = space(path, monkeypatch)
    losses = [str(name) for name in as_choices(spec.search.params.get("loss"), [])]
    trainable = [name for name in losses if catalog.loss_info(name).trainable]
    # a text encoder is slow to build: its trainable losses (the ones that can go wrong) and one
    checked = trainable or losses[:1] if spec.model.backbone != "auto" else losses
    for head in heads_of(spec):
        for loss_name in checked:
            recipe = Recipe(
                loss=loss_name,
                loss_params=defaults(loss_name),
                head=head if head != "auto" else None,  # type: ignore[arg-type]
            )
            state = build_state(spec, recipe)
            own = list(state.loss_fn.parameters())
            assert bool(own) == catalog.loss_info(loss_name).trainable
            if "embedding_size" in catalog.loss_info(loss_name).sizes.values():
                # proxies or class weights of the width the network outputs
                rows = state.parts.source.take(state.parts.rows("train")[:2])
                width = int(state.model(state.preprocess(rows, False, None)).shape[-1])
                assert any(width in p.shape for p in own), (loss_name, width)


def test_proxy_losses_on_vectors_without_embedding_dim(monkeypatch: pytest.MonkeyPatch) -> None:
    """The case users hit: vectors.yaml (no model.embedding_dim: the head keeps the vectors'
    width) searching proxy losses validated, then every trial failed."""
    spec = space(ROOT / "search_spaces" / "vectors.yaml", monkeypatch)
    assert spec.model.embedding_dim is None
    params = {**spec.search.params, "loss": ["ProxyAnchorLoss", "ArcFaceLoss"], "miner": ["none"]}
    spec = spec.model_copy(update={"search": spec.search.model_copy(update={"params": params})})
    for loss_name in ("ProxyAnchorLoss", "ArcFaceLoss"):
        state = build_state(spec, Recipe(loss=loss_name, loss_params=defaults(loss_name)))
        assert any(384 in p.shape for p in state.loss_fn.parameters())
