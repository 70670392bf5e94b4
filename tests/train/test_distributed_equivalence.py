"""Two workers x B/2 train like one worker x B: the claim minesearch.train's step rests on (no
Ray).

Two spawned processes form a gloo group; each wraps the same model in DDP, takes its shard of one
fixed global batch from ClassBalancedBatches and runs `loss_and_grads` with PML's distributed
wrappers. The test process runs the same recipe with world=1 on the whole global batch. Loss value,
tuple count, DDP-averaged model gradients and (synchronised) loss-parameter gradients must agree.

What makes this hold, and what the test guards: the wrappers gather [own shard, other shards] (a
different order on each rank) and only the own shard carries gradients; the loss is scaled by the
world size, which DDP's averaging of the model gradients undoes; `sync_loss_grads` does the same
for a loss's own parameters. Inputs are random floats, so miners that take an argmax/argmin
(BatchHardMiner) meet no ties that the two orders could break differently.
"""

from __future__ import annotations

import datetime
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from minesearch.models import EmbeddingNet, mlp_trunk
from minesearch.recipe import Recipe
from minesearch.train import ClassBalancedBatches, for_world, loss_and_grads

WORLD = 2
IN_DIM, HIDDEN, EMBEDDING = 16, 16, 8
NUM_CLASSES, POOL_PER_CLASS = 10, 12  # the "training set": 10 classes x 12 random rows
# Global batches (classes, per_class), split by class into 12 + 12 rows.
BATCHES: dict[str, tuple[int, int]] = {"6x4": (6, 4), "4x6": (4, 6)}
# 5 x 4 splits into 12 + 8 rows (classes not a multiple of the workers): PML's all_gather cannot
# gather unequal shards (gloo aborts the process), so loss_and_grads must refuse them on all ranks.
UNEQUAL = (5, 4)
RTOL, ATOL = 1e-5, 1e-6
JOIN_TIMEOUT_S = 120.0

RECIPES: dict[str, Recipe] = {
    "TripletMargin+TripletMarginMiner[semihard]": Recipe(
        "TripletMarginLoss",
        "TripletMarginMiner",
        {"margin": 0.2},
        {"margin": 0.2, "type_of_triplets": "semihard"},
    ),
    "TripletMargin+TripletMarginMiner[all]": Recipe(
        "TripletMarginLoss",
        "TripletMarginMiner",
        {"margin": 0.2},
        {"margin": 0.2, "type_of_triplets": "all"},
    ),
    "Contrastive+MultiSimilarityMiner": Recipe(
        "ContrastiveLoss", "MultiSimilarityMiner", {}, {"epsilon": 0.1}
    ),
    "MultiSimilarity+BatchHardMiner": Recipe("MultiSimilarityLoss", "BatchHardMiner"),
    "ProxyAnchor (no miner)": Recipe("ProxyAnchorLoss"),
}
# Negative control: without the wrappers each worker mines and averages over its own shard only,
# which is a different loss; the test must see the difference or it proves nothing.
CONTROL = "TripletMargin+TripletMarginMiner[all]"

Result = dict[str, Any]  # loss, tuples, mined (row-id tuples), model_grads, loss_grads


def dataset() -> tuple[torch.Tensor, torch.Tensor]:
    """Random float rows (no ties in any distance) with class-contiguous labels."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(NUM_CLASSES * POOL_PER_CLASS, IN_DIM, generator=gen)  # [N, D]
    y = torch.arange(NUM_CLASSES).repeat_interleave(POOL_PER_CLASS)  # [N]
    return x, y


def batch_rows(batch: str | tuple[int, int], world: int, rank: int) -> list[int]:
    """The first step's rows for `rank` of `world` (world=1: the whole global batch)."""
    classes, per_class = BATCHES[batch] if isinstance(batch, str) else batch
    labels = dataset()[1].numpy()
    sampler = ClassBalancedBatches(labels, classes, per_class, world_size=world, rank=rank, seed=0)
    return next(iter(sampler))


def run_recipe(
    recipe: Recipe, rows: list[int], world: int, order: list[int], wrap: bool = True
) -> Result:
    """One step of `recipe` on `rows`, identically initialised in every process.

    `order` is the global batch as the wrapped miner sees it (the rows' dataset ids): on rank r
    [shard r, then the other shards by rank]; with world=1, `rows` itself.
    """
    x, y = dataset()
    torch.manual_seed(0)
    plain = EmbeddingNet(mlp_trunk(IN_DIM, HIDDEN), nn.Linear(HIDDEN, EMBEDDING))
    torch.manual_seed(1)  # the proxies of a trainable loss
    loss_fn, miner = recipe.build(NUM_CLASSES, EMBEDDING)
    model: nn.Module = plain
    if world > 1:
        model = nn.parallel.DistributedDataParallel(plain)  # averages grads over ranks
    if wrap:
        loss_fn, miner = for_world(loss_fn, miner, world)
    outcome = loss_and_grads(model, loss_fn, miner, x[rows], y[rows], world)
    mined: list[list[tuple[int, ...]]] = []
    if miner is not None and wrap:
        with torch.no_grad():  # the miner again on the same (unchanged) embeddings
            indices = miner(plain(x[rows]), y[rows])
        mined = as_row_ids(indices, order)
    return {
        "loss": outcome.loss,
        "tuples": outcome.tuples,
        "mined": mined,
        "model_grads": [grad_of(p) for p in plain.parameters()],
        "loss_grads": [grad_of(p) for p in loss_fn.parameters()],
    }


def as_row_ids(indices: tuple[torch.Tensor, ...], order: list[int]) -> list[list[tuple[int, ...]]]:
    """A miner's output as sorted tuples of dataset row ids: [triplets] or [pos pairs, neg pairs].

    Batch positions differ between ranks and the reference; row ids do not.
    """
    ids = torch.tensor(order)
    parts = [ids[t.cpu()] for t in indices]  # [T] each
    groups = [parts] if len(parts) == 3 else [parts[:2], parts[2:]]  # pairs: (a1, p), (a2, n)
    return [sorted(zip(*(p.tolist() for p in g), strict=True)) for g in groups]


def grad_of(param: torch.Tensor) -> torch.Tensor:
    assert param.grad is not None
    return param.grad.detach().clone()


def worker(rank: int, port: int, out_dir: str) -> None:
    """One rank of the gloo group: every batch x recipe in turn, saved to out_dir/rank{r}.pt."""
    out = Path(out_dir)
    try:
        torch.set_num_threads(1)
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=WORLD,
            timeout=datetime.timedelta(seconds=60),
        )
        saved: dict[str, Any] = {}
        for batch in BATCHES:
            shards = [batch_rows(batch, WORLD, r) for r in range(WORLD)]
            rows = shards[rank]
            order = rows + [i for r, shard in enumerate(shards) if r != rank for i in shard]
            results = {name: run_recipe(r, rows, WORLD, order) for name, r in RECIPES.items()}
            control = run_recipe(RECIPES[CONTROL], rows, WORLD, order, wrap=False)
            saved[batch] = {"rows": rows, "results": results, "control": control}
        try:
            uneven = batch_rows(UNEQUAL, WORLD, rank)
            run_recipe(RECIPES[CONTROL], uneven, WORLD, uneven)
            saved["unequal"] = "no error"
        except ValueError as exc:
            saved["unequal"] = str(exc)
        torch.save(saved, out / f"rank{rank}.pt")
        dist.destroy_process_group()
    except BaseException:
        (out / f"rank{rank}.err").write_text(traceback.format_exc())
        raise


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_two_workers(out: Path) -> list[dict[str, Any]]:
    """Spawn the group, wait for it, and never leave a child behind."""
    ctx = mp.get_context("spawn")
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, port, str(out))) for r in range(WORLD)]
    try:
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    errors = [f.read_text() for f in sorted(out.glob("rank*.err"))]
    codes = [proc.exitcode for proc in procs]
    assert not errors and codes == [0] * WORLD, f"exit codes {codes}\n" + "\n".join(errors)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def max_abs_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    assert [t.shape for t in a] == [t.shape for t in b]
    return max((float((s - t).abs().max()) for s, t in zip(a, b, strict=True)), default=0.0)


def all_close(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(s, t, rtol=RTOL, atol=ATOL) for s, t in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One spawn of the 2-process group serves every batch and recipe (spawning costs seconds)."""
    return run_two_workers(tmp_path_factory.mktemp("ddp"))


@pytest.mark.parametrize("batch", list(BATCHES))
def test_shards_split_the_global_batch_by_class(ranks: list[dict[str, Any]], batch: str) -> None:
    shards = [r[batch]["rows"] for r in ranks]
    assert sorted(shards[0] + shards[1]) == sorted(batch_rows(batch, 1, 0))  # nothing shared
    labels = dataset()[1].numpy()
    assert not set(labels[shards[0]]) & set(labels[shards[1]])  # whole classes per worker


@pytest.mark.parametrize("batch", list(BATCHES))
def test_two_workers_match_one_worker_on_the_global_batch(
    ranks: list[dict[str, Any]], batch: str
) -> None:
    global_rows = batch_rows(batch, 1, 0)
    sizes = "+".join(str(len(r[batch]["rows"])) for r in ranks)
    problems = []
    for name, recipe in RECIPES.items():
        ref = run_recipe(recipe, global_rows, 1, global_rows)
        got = [r[batch]["results"][name] for r in ranks]
        model_diff = max(max_abs_diff(g["model_grads"], ref["model_grads"]) for g in got)
        own_diff = max(max_abs_diff(g["loss_grads"], ref["loss_grads"]) for g in got)
        scale = max(float(t.abs().max()) for t in ref["model_grads"])
        print(
            f"\n[{batch}: 1x{len(global_rows)} vs {sizes}] {name}: loss {ref['loss']:.7f} vs "
            f"{got[0]['loss']:.7f} / {got[1]['loss']:.7f}; tuples {ref['tuples']} vs "
            f"{got[0]['tuples']} / {got[1]['tuples']} (mined {[len(m) for m in ref['mined']]}); "
            f"max |dgrad| model {model_diff:.1e} "
            f"(max |grad| {scale:.1e}), loss params {own_diff:.1e}"
        )
        if ref["tuples"] is not None:
            assert ref["tuples"] > 0, f"{name}: nothing mined, the comparison would be vacuous"
        if recipe.loss == "ProxyAnchorLoss":
            assert ref["loss_grads"], "ProxyAnchorLoss should own trainable proxies"
        for rank, g in enumerate(got):
            if g["tuples"] != ref["tuples"]:
                problems.append(f"{name} rank {rank}: tuples {g['tuples']} != {ref['tuples']}")
            if g["mined"] != ref["mined"]:
                problems.append(f"{name} rank {rank}: mined other tuples than one worker")
            if abs(g["loss"] - ref["loss"]) > RTOL * abs(ref["loss"]) + 1e-7:
                problems.append(f"{name} rank {rank}: loss {g['loss']} != {ref['loss']}")
            if not all_close(g["model_grads"], ref["model_grads"]):
                problems.append(f"{name} rank {rank}: model grads differ by {model_diff:.1e}")
            if not all_close(g["loss_grads"], ref["loss_grads"]):
                problems.append(f"{name} rank {rank}: loss-param grads differ by {own_diff:.1e}")
        # Identical on both ranks (not merely close), or the proxies drift apart step by step.
        if max_abs_diff(got[0]["loss_grads"], got[1]["loss_grads"]) > 0:
            problems.append(f"{name}: loss-parameter grads differ between the ranks")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("batch", list(BATCHES))
def test_without_the_wrappers_the_gradients_differ(ranks: list[dict[str, Any]], batch: str) -> None:
    """The test has teeth: mining and averaging per shard is a different loss."""
    rows = batch_rows(batch, 1, 0)
    ref = run_recipe(RECIPES[CONTROL], rows, 1, rows)
    diff = max(max_abs_diff(r[batch]["control"]["model_grads"], ref["model_grads"]) for r in ranks)
    print(f"\n[{batch}] control, {CONTROL} unwrapped: max |dgrad| model {diff:.1e}")
    assert diff > 1e-3


def test_unequal_shards_are_refused_on_every_rank(ranks: list[dict[str, Any]]) -> None:
    for r in ranks:
        assert r["unequal"].startswith("workers hold shards of [12, 8] rows"), r["unequal"]
