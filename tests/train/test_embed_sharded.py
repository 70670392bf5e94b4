"""The sharded evaluation pass equals the single-worker one (2 processes, gloo, no Ray).

Each rank embeds its contiguous share of the rows and the shares are all-gathered; the result on
every rank must be the single-process `embed_rows` of all rows, and the retrieval scores computed
from it identical. Row counts cover an uneven split (7), fewer rows than workers (1) and more than
one evaluation chunk per share.
"""

from __future__ import annotations

import datetime
import socket
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from minesearch.train import EVAL_CHUNK, embed_rows, retrieval_scores
from minesearch.train._embed_rows import embed_sharded, shares

WORLD = 2
IN_DIM, EMBEDDING = 6, 4
SIZES = (1, 7, 2 * EVAL_CHUNK + 3)


class Rows:
    """A source of random float rows: `take` hands over rows by index, as a Source does."""

    def __init__(self, n: int) -> None:
        gen = np.random.default_rng(n)
        self.x = gen.standard_normal((n, IN_DIM)).astype(np.float32)
        self.labels = np.arange(n) % 3

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.x[rows]


def preprocess(raw: np.ndarray, train: bool) -> torch.Tensor:
    return torch.from_numpy(raw)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN_DIM, 8), nn.ReLU(), nn.Linear(8, EMBEDDING))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker(rank: int, port: int, out: str) -> None:
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=WORLD,
            timeout=datetime.timedelta(seconds=60),
        )
        net, results = model(), {}
        for n in SIZES:
            source = Rows(n)
            rows = np.arange(n)[::-1].copy()  # any order: the gathered rows must keep it
            results[n] = embed_sharded(
                net,
                preprocess,
                source,
                rows,
                torch.device("cpu"),
                rank,
                WORLD,  # type: ignore[arg-type]
            )
        torch.save(results, Path(out) / f"rank{rank}.pt")
        dist.destroy_process_group()
    except Exception:
        (Path(out) / f"rank{rank}.err").write_text(traceback.format_exc())
        raise


@pytest.fixture(scope="module")
def gathered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[int, torch.Tensor]]:
    out = tmp_path_factory.mktemp("sharded")
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{rank}.pt") for rank in range(WORLD)]


def test_shares_are_contiguous_and_cover_the_rows() -> None:
    assert shares(7, 2) == [4, 3]
    assert shares(1, 2) == [1, 0]
    assert sum(shares(1000, 3)) == 1000


@pytest.mark.parametrize("n", SIZES)
def test_every_rank_gets_the_single_worker_embeddings(
    gathered: list[dict[int, torch.Tensor]], n: int
) -> None:
    source = Rows(n)
    rows = np.arange(n)[::-1].copy()
    single = embed_rows(model(), preprocess, source, rows, torch.device("cpu"))  # type: ignore[arg-type]
    for rank in range(WORLD):
        assert gathered[rank][n].shape == (n, EMBEDDING)
        torch.testing.assert_close(gathered[rank][n], single, rtol=0, atol=1e-6)


def test_the_scores_are_the_single_worker_scores(gathered: list[dict[int, torch.Tensor]]) -> None:
    n = SIZES[-1]
    source = Rows(n)
    rows = np.arange(n)[::-1].copy()
    single = embed_rows(model(), preprocess, source, rows, torch.device("cpu"))  # type: ignore[arg-type]
    labels = source.labels[rows]
    expected: dict[str, Any] = retrieval_scores(single, labels).as_metrics()
    scores = retrieval_scores(gathered[0][n], labels).as_metrics()
    assert scores == pytest.approx(expected, abs=1e-6)
