"""A recipe: the concrete loss, miner, their parameters as used, and the optimiser settings.

It travels from the search (driver) to the Ray Train workers inside a `TrialConfig`, and into
MLflow as flat parameters; the constructor arguments are complete (PML defaults filled in), so
what MLflow shows is what ran.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from minesearch import catalog
from minesearch.config import DEFAULT_LR, SpaceSpec
from minesearch.config.vocab import AUTO_HEAD, HeadName, OptimizerName

# How the recipe's margins were set; "none" when neither its loss nor its miner has a `margin`.
MarginMode = Literal["tied", "separate", "default", "none"]


@dataclass(frozen=True)
class Recipe:
    loss: str
    miner: str = catalog.NO_MINER
    loss_params: dict[str, Any] = field(default_factory=dict)
    miner_params: dict[str, Any] = field(default_factory=dict)
    lr: float = DEFAULT_LR
    margin_mode: MarginMode = "default"
    proxy_lr_factor: float | None = None  # lr multiplier of a trainable loss's own parameters
    backbone_lr_factor: float | None = None  # lr multiplier of the backbone (None: 1, as the head)
    weight_miners: bool = False  # a proxy loss with a miner was allowed by the space file
    # None: the space's own (train.weight_decay, train.warmup_epochs, model.head)
    weight_decay: float | None = None
    warmup_epochs: float | None = None  # the backbone's lr rises linearly over these epochs
    head: HeadName | None = None
    optimizer: OptimizerName | None = None  # None: the space's train.optimizer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        return cls(**data)

    def resolved(self, spec: SpaceSpec) -> Recipe:
        """Every setting the recipe leaves to the space (None) filled with the space's value: what
        a trial trains with. The one place "the recipe's value, else the space's" is decided."""
        train = spec.train
        head = self.head or spec.model.head
        return replace(
            self,
            backbone_lr_factor=1.0 if self.backbone_lr_factor is None else self.backbone_lr_factor,
            weight_decay=train.weight_decay if self.weight_decay is None else self.weight_decay,
            warmup_epochs=train.warmup_epochs if self.warmup_epochs is None else self.warmup_epochs,
            head=AUTO_HEAD if head == "auto" else head,
            optimizer=self.optimizer or train.optimizer,
        )

    @property
    def tuples(self) -> catalog.Compatibility:
        return catalog.compatibility(self.loss, self.miner, self.weight_miners)

    def label(self) -> str:
        """Run name for the MLflow UI, e.g. `TripletMargin+TripletMarginMiner[hard] m=0.2`."""
        loss = self.loss.removesuffix("Loss")
        parts = [loss if self.miner == catalog.NO_MINER else f"{loss}+{self.miner}"]
        if "type_of_triplets" in self.miner_params:
            parts[0] += f"[{self.miner_params['type_of_triplets']}]"
        margins = [self.loss_params.get("margin"), self.miner_params.get("margin")]
        parts += [f"m={format_value(m)}" for m in sorted({m for m in margins if m is not None})]
        if self.head is not None:
            parts.append(f"head={self.head}")
        return " ".join(parts)

    def build(
        self, num_classes: int | None = None, embedding_size: int | None = None
    ) -> tuple[Any, Any]:
        """(loss, miner) PML objects; the miner is None for 'none'. A trainable loss (proxies,
        class weights) needs the number of training classes and the embedding size."""
        return (
            catalog.build_loss(self.loss, self.loss_params, num_classes, embedding_size),
            catalog.build_miner(self.miner, self.miner_params),
        )


def format_value(value: Any) -> str:
    """A parameter as a run name and MLflow show it (4 significant digits for a float)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
