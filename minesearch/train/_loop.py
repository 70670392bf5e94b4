"""The worker loop: setup -> (evaluate epoch 0) -> train epoch -> evaluate -> report.

Runs in every data-parallel worker of a Ray Train trial, or in the Tune trial actor itself for a
single-worker trial; a `Session` (`_session`) says which: rank, device, reporting, checkpoints.
Everything it needs arrives in `config` (the space and the `TrialConfig`, see `worker_config`):
under Ray nothing global reaches a worker. Mining and the loss see the global batch through PML's
distributed wrappers, so a miner finds hard negatives across shards.

A trial actor may run several trials one after another (Tune's actor reuse), so each run starts by
resetting what the process would otherwise carry over (`fresh_process`).

A trial with `search.folds` K > 1 trains K fold models in lockstep (`_folds`): a `WorkerState` per
fold, stepped and scored one after another in the same order on every rank (so DDP's and the
evaluation's collectives line up), under one `Lockstep` that selects on the mean over folds.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from minesearch.config import SpaceSpec
from minesearch.data import Parts, Preprocess, load_folds, load_parts
from minesearch.models import build_network, freeze
from minesearch.recipe import Recipe, TrialConfig
from minesearch.train._batches import ClassBalancedBatches
from minesearch.train._checkpoint import TrainingState
from minesearch.train._embed_rows import embed_sharded, to_device
from minesearch.train._evaluation import retrieval_scores
from minesearch.train._folds import GlobalRng, fold_scores, fold_stats, seed_globals
from minesearch.train._optimizer import BACKBONE, make_optimizer, param_groups, warm_up
from minesearch.train._pml_internals import collect_stats
from minesearch.train._precision import LossScaler, Precision
from minesearch.train._selection import Selected
from minesearch.train._session import Session
from minesearch.train._step import StepOutcome, for_world, loss_and_grads
from minesearch.train._tally import EpochTally
from minesearch.train._telemetry import SystemSampler, recipe_margin, rss_anon_mb
from minesearch.train._untrained import UntrainedScores

TELEMETRY_EVERY = 4  # steps between two mining-telemetry samples (bench/telemetry_overhead.py)


@dataclass
class WorkerState:
    """What one worker holds for the life of a trial (of one fold, in a K-fold trial)."""

    model: nn.Module  # DDP-wrapped when world > 1
    loss_fn: nn.Module
    miner: nn.Module | None
    optimizer: torch.optim.Optimizer
    batches: ClassBalancedBatches
    parts: Parts  # the source (labels in memory, inputs fetched per batch) and its split
    train_labels: np.ndarray  # int64, 0..C-1 over the training classes (proxies index by label)
    preprocess: Preprocess
    device: torch.device
    rank: int
    world: int
    seed: int
    margin: float  # what mining telemetry classifies triplets under
    backbone_lr: float  # the backbone's lr after its warm-up
    warmup_steps: int  # steps over which the backbone's lr rises to backbone_lr (0: none)
    precision: Precision  # train.precision resolved on this worker's device
    scaler: LossScaler  # fp16's loss scale (kept in the checkpoint); a plain step otherwise


@dataclass
class Lockstep:
    """A trial's fold states (one for a single split), each with its own copy of the global
    generators, and the one selection over the mean of their scores."""

    folds: list[WorkerState]
    rngs: list[GlobalRng]
    selected: Selected  # the epoch the trial is scored at, so far
    system: SystemSampler | None = field(default=None)  # system/* and cost.*, set by run_worker

    @property
    def lead(self) -> WorkerState:
        """Fold 0: its rank, world and device are every fold's; its model is the trial's."""
        return self.folds[0]


# (the space, K) -> the data's K folds (`data.load_folds`; a trial actor keeps its copy)
LoadData = Callable[[SpaceSpec, int], list[Parts]]


def run_worker(config: dict[str, Any], session: Session, load_data: LoadData = load_folds) -> None:
    """One worker's life in a trial, with `_entry.worker_config`'s dict: Ray Train calls it
    through `_entry.train_loop_per_worker`, a single-worker trial from its Tune trial actor."""
    started, clock = time.time(), time.monotonic()
    quiet_libraries()
    spec: SpaceSpec = config["spec"]
    trial: TrialConfig = config["trial"]
    # a test-estimate run repeats a recipe with other seeds, to the epoch its trial was selected at
    own = {"seed": trial.seed, "epochs": trial.epochs}
    if overrides := {k: v for k, v in own.items() if v is not None}:
        spec = spec.model_copy(update={"train": spec.train.model_copy(update=overrides)})
    folds = trial.folds if trial.folds is not None else (spec.search.folds or 1)
    fresh_process(spec.train.seed, max(1, int(spec.train.cpus_per_worker)))
    state = build_lockstep(spec, trial.recipe, session, load_data(spec, folds))
    state.system = SystemSampler(session.device, session.world, clock)  # setup is part of cost
    start = restore(state, session)
    if start >= spec.train.epochs:
        # Trained to the end before its driver died: Tune still needs this trial's final result.
        report(state, session, start, {}, final=True)
    elif start == 0:
        times = startup_times(config.get("trial_started"), started)
        report(state, session, 0, times, untrained_scores(spec, state, session))
    for epoch in range(start + 1, spec.train.epochs + 1):
        final = epoch == spec.train.epochs
        report(state, session, epoch, train_folds(state, epoch), final=final)


def build_lockstep(
    spec: SpaceSpec, recipe: Recipe, session: Session, folds: list[Parts]
) -> Lockstep:
    """A state per fold, each built as a single-fold trial builds its one: from the seeded global
    generators (the same init and batch order in every fold and every recipe)."""
    states, rngs = [], []
    for parts in folds:
        seed_globals(spec.train.seed)
        states.append(
            build_state(
                spec,
                recipe,
                session.rank,
                session.world,
                session.device,
                session.prepare,
                parts,
            )
        )
        rngs.append(GlobalRng.capture(session.device))
    selected = Selected(spec.search.metric, spec.search.mode, spec.search.select)
    return Lockstep(states, rngs, selected)


def train_folds(state: Lockstep, epoch: int) -> dict[str, float]:
    """One epoch of every fold, fold 0 first, each with its own global generators."""
    stats = []
    for fold, rng in zip(state.folds, state.rngs, strict=True):
        with rng.active(fold.device):
            stats.append(train_epoch(fold, epoch))
    return fold_stats(stats)


def startup_times(trial_started: float | None, loop_started: float) -> dict[str, float]:
    """Where a trial's start-up went, up to its first evaluation (bench/trial_overhead.py):
    `startup.to_loop_s` from the trial process's start to this loop (Train's controller, the
    worker group, the worker's imports), `setup_s` this loop's setup (data, model, process group).
    Measured with the wall clock of two processes: on one node they share it."""
    times = {"setup_s": time.time() - loop_started}
    if trial_started is not None:
        times["startup.to_loop_s"] = loop_started - trial_started
    return times


def quiet_libraries() -> None:
    """PML logs every kNN call and faiss each CPU-feature probe at INFO: noise in the search log."""
    for name in ("PML", "faiss.loader"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # DDP warns about conv weights with one input channel; harmless for these sizes.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")


def fresh_process(seed: int, threads: int) -> None:
    """What a trial must not inherit from an earlier trial of the same process (Tune reuses a
    single-worker trial's actor): the global seeds (numpy's is PML's too), torch's thread count
    and default dtype, PML's statistics switch, and CUDA's cached memory and peak statistics.
    Models, losses and optimisers are built anew by every trial (`build_state`)."""
    seed_globals(seed)
    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float32)
    collect_stats(True)  # reducers count non-zero-loss tuples (telemetry)
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # never initialises CUDA
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def build_state(
    spec: SpaceSpec,
    recipe: Recipe,
    rank: int = 0,
    world: int = 1,
    device: torch.device | None = None,
    prepare: Callable[[nn.Module], nn.Module] | None = None,
    parts: Parts | None = None,
) -> WorkerState:
    """A worker's state for `recipe`; without Ray (rank 0 of 1, on the CPU, no DDP) it is what
    the benches train in-process, with the same steps as a trial. `parts`: the space's data,
    opened already (default: opened here). The recipe trains as resolved against the space
    (`Recipe.resolved`): its own optimiser, weight decay, warm-up and head, else the space's."""
    device = device or torch.device("cpu")
    recipe = recipe.resolved(spec)
    precision = Precision.resolve(spec.train.precision, device)
    torch.manual_seed(spec.train.seed)  # same init on every worker and in every trial
    parts = parts if parts is not None else load_parts(spec)
    train_labels = contiguous(parts.labels("train"))
    network = build_network(spec, parts.source, recipe.head)
    freeze(network.backbone, spec.model.train_last_blocks)
    model = prepare(network.model) if prepare is not None else network.model.to(device)
    num_classes = len(np.unique(train_labels))
    # the width the network has, not model.embedding_dim (None keeps the backbone's width)
    loss_fn, miner = recipe.build(num_classes, network.embedding_dim)
    loss_fn = loss_fn.to(device)
    loss_fn, miner = for_world(loss_fn, miner, world)  # mining sees the global batch
    groups = param_groups(network, recipe)
    if own := list(loss_fn.parameters()):  # proxies / class weights learn at their own rate
        groups.append({"params": own, "lr": recipe.lr * (recipe.proxy_lr_factor or 1.0)})
    if not groups:
        raise ValueError(
            "nothing trains: the backbone has no trainable parameters (vectors used as they are, "
            f"or model.train_last_blocks: 0) and neither has head {network.head!r}"
        )
    batches = ClassBalancedBatches(
        train_labels,
        spec.train.batch.classes,
        spec.train.batch.per_class,
        world_size=world,
        rank=rank,
        seed=spec.train.seed,
    )
    assert recipe.optimizer is not None and recipe.weight_decay is not None  # resolved
    assert recipe.warmup_epochs is not None
    backbone_lr = next((g["lr"] for g in groups if g.get("name") == BACKBONE), 0.0)
    return WorkerState(
        model=model,
        loss_fn=loss_fn,
        miner=miner,
        optimizer=make_optimizer(recipe.optimizer, groups, recipe.lr, recipe.weight_decay),
        batches=batches,
        parts=parts,
        train_labels=train_labels,
        preprocess=network.preprocess,
        device=device,
        rank=rank,
        world=world,
        seed=spec.train.seed,
        margin=recipe_margin(recipe.loss_params, recipe.miner_params),
        backbone_lr=backbone_lr,
        warmup_steps=round(recipe.warmup_epochs * len(batches)),
        precision=precision,
        scaler=precision.scaler(),
    )


def contiguous(labels: np.ndarray) -> np.ndarray:
    """Training labels as 0..C-1: proxy and classification losses index their weights by label."""
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64).reshape(-1)


def train_epoch(state: WorkerState, epoch: int) -> dict[str, float]:
    """One pass of class-balanced steps; raises FloatingPointError when the loss diverges. Under
    fp16 a step whose scaled gradients overflowed is skipped (`skipped_steps`), as GradScaler
    does."""
    state.batches.set_epoch(epoch)
    state.model.train()
    rows, labels = state.parts.rows("train"), torch.from_numpy(state.train_labels)
    generator = torch.Generator().manual_seed(state.seed * 1_000_003 + epoch * 101 + state.rank)
    started, tally = time.perf_counter(), EpochTally()
    for step, idx in enumerate(state.batches):
        raw = state.parts.source.take(rows[idx])  # only this batch's rows are read
        x = to_device(state.preprocess(raw, True, generator), state.device)
        y = labels[idx].to(state.device)
        try:
            outcome, stepped = train_step(state, x, y, (epoch - 1) * len(state.batches) + step)
        except FloatingPointError as exc:
            raise FloatingPointError(f"{exc} at epoch {epoch}, step {step}") from None
        tally.add(outcome, len(idx), stepped)
        if step % TELEMETRY_EVERY == 0:  # a sample of steps keeps it under ~2% of an epoch
            tally.sample(outcome, y, state.margin, state.loss_fn)
    return tally.stats(time.perf_counter() - started, state.world, state.scaler)


def train_step(
    state: WorkerState, x: Any, y: torch.Tensor, global_step: int
) -> tuple[StepOutcome, bool]:
    """One optimiser step on one batch: the warmed-up lr, the loss and its gradients (over the
    global batch), the (possibly scaled) step. Also says whether the step was taken: fp16 skips
    one whose gradients overflowed."""
    warm_up(state.optimizer, global_step, state.warmup_steps, state.backbone_lr)
    state.optimizer.zero_grad(set_to_none=True)
    outcome = loss_and_grads(
        state.model,
        state.loss_fn,
        state.miner,
        x,
        y,
        state.world,
        state.precision,
        state.scaler,
    )
    return outcome, state.scaler.step(state.optimizer)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP: evaluation must not enter DDP's collectives."""
    inner = getattr(model, "module", model)
    assert isinstance(inner, nn.Module)
    return inner


def untrained_scores(spec: SpaceSpec, state: Lockstep, session: Session) -> UntrainedScores | None:
    """Where this process keeps the untrained fold models' val scores; None for a data-parallel
    trial, whose evaluation is a collective every rank must join (`_untrained`)."""
    if session.world != 1:
        return None
    folds = [(unwrap(fold.model), fold.parts) for fold in state.folds]
    return UntrainedScores.of(spec, folds, state.lead.precision.name, state.lead.device)


def report(
    state: Lockstep,
    session: Session,
    epoch: int,
    stats: dict[str, float],
    untrained: UntrainedScores | None = None,
    final: bool = False,
) -> None:
    """All ranks embed a share of each fold's validation split and report (a barrier); rank 0
    scores the gathered embeddings and writes the checkpoint. `untrained` (epoch 0 of a
    single-worker trial): scores this process already has for an identical untrained network
    are reported without evaluating it again. `final`: the trial's last epoch, whose checkpoint
    leaves out the optimiser's state (`fold_state`)."""
    lead = state.lead
    metrics: dict[str, float] = {"epoch": epoch, **stats}
    if (anon := rss_anon_mb()) is not None:
        metrics["memory.rss_anon_mb"] = anon  # this worker, now (per rank: rank 0's is logged)
    per_fold = []
    for k, (fold, rng) in enumerate(zip(state.folds, state.rngs, strict=True)):
        scores = untrained.get(k) if untrained is not None else None
        if scores is None:
            with rng.active(fold.device):
                scores = evaluate(fold)
            if untrained is not None and scores is not None:
                untrained.put(k, scores)
        if scores is not None:
            per_fold.append(scores)
    if lead.rank != 0:
        session.report(metrics, None)
        return
    scores = fold_scores(per_fold)
    metrics |= scores
    if any(not math.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"non-finite metrics at epoch {epoch}: {metrics}")
    state.selected.update(epoch, scores)  # the mean over folds, under the metrics' own names
    metrics |= state.selected.report(epoch)
    if state.system is not None:  # after evaluation: the epoch's cost includes it
        metrics |= state.system.sample()
    with tempfile.TemporaryDirectory() as tmp:
        saved = [fold_state(fold, optimizer=not final) for fold in state.folds]
        TrainingState(
            epoch=epoch,
            **saved[0],
            selection=state.selected.to_dict(),
            folds=tuple(saved[1:]),
        ).save(tmp)
        session.report(metrics, tmp)


def evaluate(state: WorkerState) -> dict[str, float] | None:
    """A collective: every rank embeds its share of the fold's val rows; rank 0 scores them (in
    fp32, embedded in the trial's precision), the others get None."""
    parts, val = state.parts, state.parts.rows("val")
    embeddings = embed_sharded(
        unwrap(state.model),
        state.preprocess,
        parts.source,
        val,
        state.device,
        state.rank,
        state.world,
        state.precision,
    )
    if state.rank != 0:
        return None
    return retrieval_scores(embeddings, parts.labels("val")).as_metrics()


def fold_state(state: WorkerState, optimizer: bool = True) -> dict[str, Any]:
    """What the checkpoint keeps of one fold (`TrainingState.fold`). Without `optimizer` (the
    last epoch: nothing trains from it) the optimiser's state is left out: AdamW's two moments
    per weight are two thirds of a checkpoint, written and then copied into the trial's storage
    (uploaded, on a cluster) at every report. A run restored from such a checkpoint reports it
    again and trains nothing (`run_worker`)."""
    return {
        "model": unwrap(state.model).state_dict(),
        "loss": state.loss_fn.state_dict(),
        "optimizer": state.optimizer.state_dict() if optimizer else {},
        "scaler": state.scaler.state_dict(),
    }


def restore(state: Lockstep, session: Session) -> int:
    """Load the last checkpoint if the session hands one over (a restarted worker group, a
    retried or resumed trial), every fold of it; return the epoch to continue after."""
    with session.latest_checkpoint() as directory:
        if directory is None:
            return 0
        saved = TrainingState.load(directory)
    if saved.fold_count != len(state.folds):
        raise ValueError(
            f"search.folds: the checkpoint holds {saved.fold_count} folds, the trial trains "
            f"{len(state.folds)}; resume with the search's own search.folds"
        )
    for k, fold in enumerate(state.folds):
        kept = saved.fold(k)
        unwrap(fold.model).load_state_dict(kept["model"])
        fold.loss_fn.load_state_dict(kept["loss"])
        if kept["optimizer"]:  # left out of the last epoch's checkpoint
            fold.optimizer.load_state_dict(kept["optimizer"])
        fold.scaler.load_state_dict(kept.get("scaler", {}))
    state.selected.restore(saved.selection)
    return saved.epoch
