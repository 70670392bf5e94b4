"""The trial's optimiser: the fused kernel where torch has one, with the per-tensor update."""

from __future__ import annotations

import pytest
import torch

from minesearch.train._optimizer import fused_kernel, make_optimizer

LOOPED = {
    "adamw": lambda groups: torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01),
    "adam": lambda groups: torch.optim.Adam(groups, lr=1e-3, weight_decay=0.01),
    "sgd": lambda groups: torch.optim.SGD(groups, lr=1e-3, momentum=0.9, weight_decay=0.01),
}


def _params(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(30, 20, generator=g), torch.randn(20, generator=g)]


def _train(name: str, start: list[torch.Tensor], fused: bool) -> list[torch.Tensor]:
    """20 steps of `name` from `start` on fixed random gradients, fused or torch's default."""
    params = [p.clone().requires_grad_(True) for p in start]
    groups = [{"params": params[:1], "lr": 1e-3}, {"params": params[1:], "lr": 3e-3}]
    if fused:
        optimizer = make_optimizer(name, groups, lr=1e-3, weight_decay=0.01)
        assert optimizer.defaults.get("fused") is True
    else:  # torch's default on the CPU: the per-tensor loop, as the recipe names it
        optimizer = LOOPED[name](groups)
        assert not optimizer.defaults.get("fused")
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        optimizer.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_the_fused_step_is_the_per_tensor_step(name: str) -> None:
    start = _params(0)
    fused, looped = _train(name, start, True), _train(name, start, False)
    for a, b, s in zip(fused, looped, start, strict=True):
        assert not torch.equal(a, s)  # it trained
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_fused_only_where_every_parameter_can_be() -> None:
    floats = [{"params": [torch.zeros(2, requires_grad=True)]}]
    assert fused_kernel(floats) is True
    assert fused_kernel([{"params": [torch.zeros(2, device="meta")]}]) is None
    assert fused_kernel([*floats, {"params": [torch.zeros(2, device="meta")]}]) is None
    assert fused_kernel([{"params": [torch.zeros(2, dtype=torch.int64)]}]) is None
