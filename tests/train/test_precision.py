"""Mixed precision on CPU: autocast to bf16 (and fp16, which CPU autocast in torch 2.13 supports,
with a real GradScaler) against fp32 on the same tiny batches and the same weights.

Why these tolerances. bf16 keeps 8 significant bits: each matrix product under autocast rounds its
inputs by up to 2^-9 relative, and an embedding of the tiny MLP below moves by up to ~2^-8 = 0.004
per entry (asserted below 0.01). fp16 keeps 11 bits: 8x finer. The miner, the loss and the scores
then work in fp32 (minesearch/train/_precision.py says why), so what differs is only that
rounding of the embeddings, carried through each loss or decision:
- a loss moves by its gradient times that rounding: within 1% of its value for the smooth losses
  (worst seen over 10 seeds: 0.54%, NTXent) and 3% for TripletMarginLoss, which averages only the
  triplets with a non-zero hinge, so a triplet crossing the hinge changes the divisor (worst seen
  1.6%); fp16 a quarter of that (worst seen 0.21%). The gradients of the network keep their
  direction: cosine >= 0.99 with bf16 (worst seen 0.997), >= 0.999 with fp16 (0.99995);
- a miner decides on distances that move by at most delta (the largest change of its distance
  matrix, asserted below 0.02): every tuple decided differently must be within 2 delta of its
  threshold (a decision compares two distances, so it moves by at most 2 delta), judged on the
  fp32 distances by a brute-force rule that reproduces the miner exactly, and such tuples are few
  (at most 10% of the union; 0.4 to 2.1% on these seeds, up to 6% on one batch of others);
- a tiny training's MAP@R moves by at most 0.02 (seen 0.005 with bf16, 0.002 with fp16), well
  inside the 0.03 that its seed alone moves it, while training raises it by ~0.45.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from torch import nn

from minesearch.catalog import build_loss, build_miner
from minesearch.config._schema import TrainSpec
from minesearch.train._embed_rows import embed_rows
from minesearch.train._evaluation import retrieval_scores
from minesearch.train._precision import FP32, SETTINGS, LossScaler, Precision
from minesearch.train._step import loss_and_grads

CPU = torch.device("cpu")
BF16 = Precision("bf16", "cpu")
FP16 = Precision("fp16", "cpu")
IN_DIM, WIDTH, EMBEDDING = 16, 64, 32
CLASSES, PER_CLASS = 8, 4
SEEDS = (0, 1, 2)

# loss -> its relative tolerance under bf16 (fp16: a quarter); see the module docstring
LOSS_TOLERANCE = {
    "TripletMarginLoss": 0.03,
    "ContrastiveLoss": 0.01,
    "MultiSimilarityLoss": 0.01,
    "NTXentLoss": 0.01,
    "SupConLoss": 0.01,
    "ProxyAnchorLoss": 0.01,
    "ArcFaceLoss": 0.01,
}
GRAD_COSINE = {"bf16": 0.99, "fp16": 0.999}
MINED_DIFFERENT_SHARE = 0.10
MAP_AT_R_TOLERANCE = 0.02


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tensors of a few hundred entries: a thread pool only adds its waits (10x on a busy
    machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Net(nn.Module):
    """A small MLP with the embedding network's unit-length output."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.mlp = nn.Sequential(nn.Linear(IN_DIM, WIDTH), nn.ReLU(), nn.Linear(WIDTH, EMBEDDING))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.mlp(x), dim=-1)


def clustered_batch(seed: int, spread: float = 0.6) -> tuple[torch.Tensor, torch.Tensor]:
    """CLASSES x PER_CLASS class-contiguous rows around random centres."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(CLASSES, IN_DIM, generator=gen)
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    return centres[labels] + spread * torch.randn(len(labels), IN_DIM, generator=gen), labels


# --- resolution -------------------------------------------------------------------------------


def test_auto_is_fp32_on_cpu() -> None:
    assert Precision.resolve("auto", CPU) == FP32
    assert Precision.resolve("auto", CPU).autocast().__class__.__name__ == "nullcontext"


def test_auto_is_bf16_on_a_cuda_device_with_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CUDA is touched: torch.cuda.is_bf16_supported is replaced."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    precision = Precision.resolve("auto", torch.device("cuda", 0))
    assert precision == Precision("bf16", "cuda") and precision.dtype == torch.bfloat16
    assert not precision.scaler().enabled


def test_auto_is_fp32_on_a_cuda_device_that_only_emulates_bf16(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pre-Ampere GPU (V100, T4) emulates bf16, slower than fp32: auto keeps fp32 there."""
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert Precision.resolve("auto", torch.device("cuda")).name == "fp32"


@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_an_explicit_setting_is_kept_and_only_fp16_scales(name: str) -> None:
    precision = Precision.resolve(name, CPU)
    assert precision.name == name
    assert precision.scaler().enabled is (name == "fp16")


def test_fp16_on_cuda_builds_a_cuda_grad_scaler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded, not built: a real CUDA GradScaler on this machine would disable itself."""
    built: list[str] = []

    class Recording:
        def __init__(self, device: str) -> None:
            built.append(device)

        def is_enabled(self) -> bool:
            return True

    monkeypatch.setattr(torch.amp, "GradScaler", Recording)
    assert Precision.resolve("fp16", torch.device("cuda")).scaler().enabled
    assert built == ["cuda"]


def test_an_unknown_setting_names_the_field_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"train.precision must be one of \['auto', 'fp32'"):
        Precision.resolve("fp8", CPU)


def test_the_schema_accepts_exactly_the_settings() -> None:
    annotation = TrainSpec.model_fields["precision"].annotation
    assert typing.get_args(annotation) == SETTINGS
    assert TrainSpec().precision == "auto"


# --- losses -----------------------------------------------------------------------------------


def loss_and_network_grads(
    net: Net, loss_fn: nn.Module, precision: Precision, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, torch.Tensor]:
    net.zero_grad()
    loss_fn.zero_grad()
    loss = loss_fn(precision.embed(net, x), y)
    assert loss.dtype == torch.float32
    loss.backward()
    return loss.item(), torch.cat([p.grad.flatten() for p in net.parameters()])  # type: ignore[union-attr]


@pytest.mark.parametrize("name", list(LOSS_TOLERANCE))
@pytest.mark.parametrize("precision", [BF16, FP16], ids=["bf16", "fp16"])
def test_each_loss_family_matches_fp32(name: str, precision: Precision) -> None:
    tolerance = LOSS_TOLERANCE[name] / (1 if precision.name == "bf16" else 4)
    for seed in SEEDS:
        x, y = clustered_batch(seed)
        net = Net(seed)
        torch.manual_seed(100)  # the same proxies / class weights for both
        loss_fn = build_loss(name, {}, num_classes=CLASSES, embedding_size=EMBEDDING)
        with torch.no_grad():
            moved = (precision.embed(net, x) - FP32.embed(net, x)).abs().max().item()
        assert 0 < moved < 0.01  # autocast did round, and by no more than bf16 should
        reference, reference_grads = loss_and_network_grads(net, loss_fn, FP32, x, y)
        value, grads = loss_and_network_grads(net, loss_fn, precision, x, y)
        assert value == pytest.approx(reference, rel=tolerance), seed
        cosine = nn.functional.cosine_similarity(grads, reference_grads, dim=0).item()
        assert cosine >= GRAD_COSINE[precision.name], seed


# --- mining -----------------------------------------------------------------------------------

Tuple = tuple[str, int, int, int]
# (the miner's fp32 distance matrix, labels) -> every candidate tuple with its decision value v:
# the miner keeps exactly the tuples with v >= 0 (brute force, checked against the miner below).
# v is a difference of two matrix entries (or of an entry and a row's max/min), so when every entry
# moves by at most delta, v moves by at most 2 delta.
Decisions = Callable[[torch.Tensor, torch.Tensor], dict[Tuple, float]]


def as_tuples(mined: tuple[torch.Tensor, ...]) -> set[Tuple]:
    """A miner's output as a set: ("t", a, p, n) triplets, ("+", a, p) / ("-", a, n) pairs."""
    rows = [m.tolist() for m in mined]
    if len(rows) == 3:
        return {("t", a, p, n) for a, p, n in zip(*rows, strict=True)}
    return {("+", a, p, -1) for a, p in zip(rows[0], rows[1], strict=True)} | {
        ("-", a, n, -1) for a, n in zip(rows[2], rows[3], strict=True)
    }


def positives_and_negatives(labels: torch.Tensor, a: int) -> tuple[list[int], list[int]]:
    same = (labels == labels[a]).tolist()
    return [p for p, s in enumerate(same) if s and p != a], [n for n, s in enumerate(same) if not s]


def triplet_margin(margin: float, kind: str) -> Decisions:
    """m = d(a, n) - d(a, p); all: m <= margin, hard: m <= 0, semihard: 0 < m <= margin."""

    def decisions(dist: torch.Tensor, labels: torch.Tensor) -> dict[Tuple, float]:
        found = {}
        for a in range(len(labels)):
            positives, negatives = positives_and_negatives(labels, a)
            for p in positives:
                for n in negatives:
                    m = float(dist[a, n] - dist[a, p])
                    v = {"all": margin - m, "hard": -m, "semihard": min(m, margin - m)}[kind]
                    found["t", a, p, n] = v
        return found

    return decisions


def batch_hard(dist: torch.Tensor, labels: torch.Tensor) -> dict[Tuple, float]:
    """Each anchor's farthest positive and nearest negative: v = 0 for that pick, below 0 by how
    much nearer (farther) another positive (negative) is."""
    found = {}
    for a in range(len(labels)):
        positives, negatives = positives_and_negatives(labels, a)
        farthest = float(dist[a, positives].max())
        nearest = float(dist[a, negatives].min())
        for p in positives:
            for n in negatives:
                found["t", a, p, n] = min(float(dist[a, p]) - farthest, nearest - float(dist[a, n]))
    return found


def multi_similarity(epsilon: float) -> Decisions:
    """On similarities s: a positive (a, p) is kept when s(a, p) - epsilon < the largest
    negative similarity of a, a negative (a, n) when s(a, n) + epsilon > the smallest positive
    similarity of a."""

    def decisions(sim: torch.Tensor, labels: torch.Tensor) -> dict[Tuple, float]:
        found = {}
        for a in range(len(labels)):
            positives, negatives = positives_and_negatives(labels, a)
            hardest_negative = float(sim[a, negatives].max())
            hardest_positive = float(sim[a, positives].min())
            for p in positives:
                found["+", a, p, -1] = hardest_negative - float(sim[a, p]) + epsilon
            for n in negatives:
                found["-", a, n, -1] = float(sim[a, n]) + epsilon - hardest_positive
        return found

    return decisions


MINERS: dict[str, tuple[str, dict[str, object], Decisions]] = {
    "triplet-margin-all": ("TripletMarginMiner", {}, triplet_margin(0.2, "all")),
    "triplet-margin-semihard": (
        "TripletMarginMiner",
        {"type_of_triplets": "semihard"},
        triplet_margin(0.2, "semihard"),
    ),
    "triplet-margin-hard": (
        "TripletMarginMiner",
        {"type_of_triplets": "hard"},
        triplet_margin(0.2, "hard"),
    ),
    "multi-similarity": ("MultiSimilarityMiner", {}, multi_similarity(0.1)),
    "batch-hard": ("BatchHardMiner", {}, batch_hard),
}


def mined(case: str, emb: torch.Tensor, labels: torch.Tensor) -> tuple[set[Tuple], torch.Tensor]:
    """The miner's tuples and its distance matrix (similarities for MultiSimilarity)."""
    name, params, _ = MINERS[case]
    miner = build_miner(name, params)
    assert miner is not None
    distance: nn.Module = miner.distance  # type: ignore[assignment]  # PML's BaseDistance
    return as_tuples(miner(emb, labels)), distance(emb)


@pytest.mark.parametrize("case", list(MINERS))
def test_the_brute_force_decisions_are_the_miners(case: str) -> None:
    """The decision values below are evidence only if they describe the miner exactly."""
    for seed in SEEDS:
        x, y = clustered_batch(seed)
        with torch.no_grad():
            emb = FP32.embed(Net(seed), x)
        tuples, dist = mined(case, emb, y)
        values = MINERS[case][2](dist, y)
        assert tuples == {t for t, v in values.items() if v >= 0}, seed
        assert 0 < len(tuples) < len(values), seed  # neither nothing nor everything


@pytest.mark.parametrize("case", list(MINERS))
def test_mining_decides_as_fp32_except_within_the_rounding(case: str) -> None:
    differing = union = 0
    for seed in SEEDS:
        x, y = clustered_batch(seed)
        net = Net(seed)
        with torch.no_grad():
            exact_tuples, dist = mined(case, FP32.embed(net, x), y)
            rounded_tuples, rounded_dist = mined(case, BF16.embed(net, x), y)
        delta = float((rounded_dist - dist).abs().max())
        assert 0 < delta < 0.02
        values = MINERS[case][2](dist, y)
        for t in exact_tuples ^ rounded_tuples:
            assert abs(values[t]) <= 2 * delta + 1e-6, (seed, t, values[t], delta)
        differing += len(exact_tuples ^ rounded_tuples)
        union += len(exact_tuples | rounded_tuples)
    assert differing <= MINED_DIFFERENT_SHARE * union


# --- the step ---------------------------------------------------------------------------------


class Spy(nn.Module):
    """Records the dtype it is given and whether autocast is on when it runs."""

    def __init__(self, inner: nn.Module | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[tuple[torch.dtype, bool]] = []

    def forward(self, emb: torch.Tensor, *args: object) -> object:
        self.seen.append((emb.dtype, torch.is_autocast_enabled("cpu")))
        return self.inner(emb, *args) if self.inner is not None else emb


class AutocastProbe(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.autocast: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        return self.net(x)


def test_the_step_forwards_under_autocast_and_mines_and_scores_in_fp32() -> None:
    x, y = clustered_batch(0)
    model = AutocastProbe(Net(0))
    miner = Spy(build_miner("TripletMarginMiner", {}))
    loss_fn = Spy(build_loss("ContrastiveLoss", {}))
    outcome = loss_and_grads(model, loss_fn, miner, x, y, 1, BF16)
    assert model.autocast == [True]
    assert miner.seen == [(torch.float32, False)] and loss_fn.seen == [(torch.float32, False)]
    assert outcome.embeddings.dtype == torch.float32
    assert all(p.dtype == p.grad.dtype == torch.float32 for p in model.parameters())  # type: ignore[union-attr]


def test_the_default_step_is_plain_fp32() -> None:
    """Today's callers pass no precision: the same loss and gradients as the step written out."""
    x, y = clustered_batch(1)
    net, loss_fn = Net(1), build_loss("MultiSimilarityLoss", {})
    expected = loss_fn(net(x), y)
    expected.backward()
    expected_grads = [p.grad.clone() for p in net.parameters()]  # type: ignore[union-attr]
    net.zero_grad()
    outcome = loss_and_grads(net, loss_fn, None, x, y, 1)
    assert outcome.loss == expected.item()
    assert all(
        torch.equal(p.grad, g)  # type: ignore[arg-type]
        for p, g in zip(net.parameters(), expected_grads, strict=True)
    )


def test_fp16_without_its_scaler_is_refused() -> None:
    x, y = clustered_batch(0)
    with pytest.raises(ValueError, match="fp16 needs its loss scaler"):
        loss_and_grads(Net(0), build_loss("ContrastiveLoss", {}), None, x, y, 1, FP16)


# --- the fp16 loss scaler ---------------------------------------------------------------------


def fp16_step(
    net: Net, optimizer: torch.optim.Optimizer, scaler: LossScaler, seed: int = 0
) -> bool:
    x, y = clustered_batch(seed)
    optimizer.zero_grad(set_to_none=True)
    loss_and_grads(net, build_loss("ContrastiveLoss", {}), None, x, y, 1, FP16, scaler)
    return scaler.step(optimizer)


def test_the_scaler_scales_the_gradients_and_the_step_unscales_them() -> None:
    x, y = clustered_batch(0)
    net, loss_fn = Net(0), build_loss("ContrastiveLoss", {})
    loss_and_grads(net, loss_fn, None, x, y, 1)
    fp32_grads = torch.cat([p.grad.flatten() for p in net.parameters()])  # type: ignore[union-attr]
    net.zero_grad(set_to_none=True)
    scaler = FP16.scaler()
    loss_and_grads(net, loss_fn, None, x, y, 1, FP16, scaler)
    assert scaler.scale == 65536.0
    scaled = [p.grad.clone() for p in net.parameters()]  # type: ignore[union-attr]
    unscaled = torch.cat([g.flatten() for g in scaled]) / scaler.scale
    assert nn.functional.cosine_similarity(unscaled, fp32_grads, dim=0) > GRAD_COSINE["fp16"]
    assert unscaled.norm() == pytest.approx(fp32_grads.norm().item(), rel=0.01)
    before = [p.detach().clone() for p in net.parameters()]
    assert scaler.step(torch.optim.SGD(net.parameters(), lr=0.5)) is True
    for p, b, g in zip(net.parameters(), before, scaled, strict=True):
        torch.testing.assert_close(p.detach(), b - 0.5 * g / 65536.0)  # unscaled, then stepped


def test_a_step_with_overflowed_gradients_is_skipped_and_the_next_one_taken() -> None:
    net = Net(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    scaler = FP16.scaler()
    first = next(net.parameters())
    hook = first.register_hook(lambda g: g * torch.inf)  # an overflow in the backward
    before = [p.detach().clone() for p in net.parameters()]
    assert fp16_step(net, optimizer, scaler) is False
    assert all(torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))
    assert not optimizer.state  # Adam's moments and step count untouched
    assert scaler.scale == 32768.0  # halved
    hook.remove()
    assert fp16_step(net, optimizer, scaler) is True
    assert not torch.equal(first, before[0])
    assert scaler.scale == 32768.0


def test_a_batch_without_tuples_steps_under_fp16() -> None:
    """Zero tuples: PML's loss is 0 with zero gradients; GradScaler needs gradients to check,
    and they are there, so the step neither crashes nor skips."""
    x, y = clustered_batch(0, spread=0.01)  # tight clusters: no triplet within the margin
    net = Net(0)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    scaler = FP16.scaler()
    loss_fn, miner = build_loss("TripletMarginLoss", {}), build_miner("TripletMarginMiner", {})
    outcome = loss_and_grads(net, loss_fn, miner, x, y, 1, FP16, scaler)
    assert outcome.tuples == 0 and outcome.loss == 0.0
    assert scaler.step(optimizer) is True


def test_the_scale_survives_a_checkpoint() -> None:
    net = Net(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    scaler = FP16.scaler()
    hook = next(net.parameters()).register_hook(lambda g: g * torch.inf)
    fp16_step(net, optimizer, scaler)
    hook.remove()
    restarted = FP16.scaler()
    restarted.load_state_dict(scaler.state_dict())
    assert restarted.scale == scaler.scale == 32768.0
    plain = LossScaler()  # fp32/bf16: nothing to save, and a checkpoint without it loads
    assert plain.state_dict() == {}
    restarted.load_state_dict({})
    assert restarted.scale == 32768.0


# --- a tiny training --------------------------------------------------------------------------

TRAIN_CLASSES, VAL_CLASSES, ROWS_PER_CLASS, INFORMATIVE = 24, 16, 10, 4
STEPS = 60


class Vectors:
    """Classes that differ in 4 of 16 dimensions, the other 12 loud noise: training learns to
    ignore the noise, which carries over to classes it never saw (MAP@R ~0.09 -> ~0.55)."""

    def __init__(self) -> None:
        gen = np.random.default_rng(0)
        classes = TRAIN_CLASSES + VAL_CLASSES
        centres = gen.standard_normal((classes, INFORMATIVE))
        self.labels = np.repeat(np.arange(classes), ROWS_PER_CLASS)
        signal = centres[self.labels] + 0.15 * gen.standard_normal((len(self.labels), INFORMATIVE))
        noise = gen.standard_normal((len(self.labels), IN_DIM - INFORMATIVE))
        self.x = np.concatenate([signal, noise], axis=1).astype(np.float32)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.x[rows]


def as_tensor(
    raw: np.ndarray, train: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    return torch.from_numpy(raw)


def val_map_at_r(net: Net, data: Vectors, precision: Precision) -> float:
    rows = np.flatnonzero(data.labels >= TRAIN_CLASSES)
    embeddings = embed_rows(net, as_tensor, data, rows, CPU, precision)  # type: ignore[arg-type]
    assert embeddings.dtype == torch.float32
    return retrieval_scores(embeddings, data.labels[rows]).mean_average_precision_at_r


def train_tiny(precision: Precision) -> tuple[float, float, int]:
    """(MAP@R before, after, skipped steps): STEPS class-balanced steps, the same batches and
    initial weights in every precision."""
    data, net = Vectors(), Net(0)
    loss_fn, miner = build_loss("MultiSimilarityLoss", {}), build_miner("MultiSimilarityMiner", {})
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    scaler, gen = precision.scaler(), np.random.default_rng(0)
    before, skipped = val_map_at_r(net, data, precision), 0
    for _ in range(STEPS):
        classes = gen.choice(TRAIN_CLASSES, CLASSES, replace=False)
        rows_of = [np.flatnonzero(data.labels == c) for c in classes]
        idx = np.concatenate([gen.choice(rows, PER_CLASS, replace=False) for rows in rows_of])
        net.train()
        optimizer.zero_grad(set_to_none=True)
        x, y = torch.from_numpy(data.x[idx]), torch.from_numpy(data.labels[idx])
        loss_and_grads(net, loss_fn, miner, x, y, 1, precision, scaler)
        skipped += not scaler.step(optimizer)
    return before, val_map_at_r(net, data, precision), skipped


def test_a_tiny_training_scores_as_in_fp32() -> None:
    fp32_before, fp32_after, _ = train_tiny(FP32)
    assert fp32_after - fp32_before > 0.2  # it learned: a broken precision would show
    for precision in (BF16, FP16):
        before, after, skipped = train_tiny(precision)
        assert before == pytest.approx(fp32_before, abs=MAP_AT_R_TOLERANCE), precision.name
        assert after == pytest.approx(fp32_after, abs=MAP_AT_R_TOLERANCE), precision.name
        assert skipped < STEPS // 10, precision.name


def test_evaluation_embeds_in_the_precision_and_hands_fp32_over() -> None:
    data, net = Vectors(), Net(0)
    rows = np.arange(300)  # more than one evaluation chunk
    exact = embed_rows(net, as_tensor, data, rows, CPU)  # type: ignore[arg-type]
    rounded = embed_rows(net, as_tensor, data, rows, CPU, BF16)  # type: ignore[arg-type]
    assert exact.dtype == rounded.dtype == torch.float32 and rounded.shape == exact.shape
    assert 0 < (rounded - exact).abs().max() < 0.01
