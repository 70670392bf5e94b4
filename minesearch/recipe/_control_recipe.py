"""The control: the recipe a practitioner would write by hand for the model being tuned.

A search earns its cost only by beating what a person gets without it, so the control is not
PML's defaults but the usual fine-tune of the backbone's family, trained with the search's budget
(data, batches, epochs, seed). The search proposes it as its first trial when the space holds it
(`minesearch.space.locate`), so the chosen recipe is at least the control on val by
construction, and the verdict weighs the chosen recipe against it and the pretrained model.

Where each default comes from:

- **text encoders** (`minilm`, `hf:`, `sentence-transformers:`): the fine-tune a practitioner
  writes with PML for a sentence encoder, as bench/practitioner.py's hand-written baseline does.
  No head (the encoder's mean-pooled embedding, as `SentenceTransformer` trains it), PML's
  NTXentLoss at its own temperature (0.07), AdamW at 2e-5 with weight decay 0.01
  (sentence-transformers' trainer defaults) and a linear warm-up over the first 10% of the steps
  (its training examples). Not sentence-transformers' MultipleNegativesRankingLoss temperature
  (scale 20: 0.05): that loss sees one positive per anchor, where class-balanced batches give
  each anchor per_class - 1 of them, and at 0.05 the encoder barely moved on package_topics' val
  classes (split 2: 0.3514 at epoch 0, 0.3508 after one epoch, 0.3538 after two) where 0.07
  gained as the hand-written fine-tune does (0.368, 0.371; bench/results/practitioner_*.txt).
- **image models** (`timm:`, `torchvision:`): the metric-learning fine-tune of a pretrained CNN
  (Wang et al. 2019, Musgrave et al. 2020): MultiSimilarityLoss with its miner at the paper's
  defaults, AdamW, the fresh head at 1e-3 and the backbone 10x lower (1e-4, timm's usual
  fine-tuning rate), weight decay 1e-4, the head identity-started (or projecting) as the space
  says.
- **precomputed vectors** (`identity`): the identity-started linear head (epoch 0 is the vectors)
  with NTXentLoss at PML's temperature (0.07), AdamW at 5e-4, weight decay 0.01: the middle of
  the rates that gained most on held-out classes of MiniLM vectors (3e-4..1e-3, issue 11's
  measurement).
- **networks trained from scratch** (`mlp`, `convnet`): there is no practitioner's recipe to copy,
  so the control stays PML's default metric loss: TripletMarginLoss (margin 0.05), no miner, the
  space's learning rate when it is a constant, else 1e-3.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from minesearch import catalog
from minesearch.config import DEFAULT_LR, SpaceSpec, resolve_constant
from minesearch.config.vocab import BackboneFamily
from minesearch.recipe._recipe import Recipe

# What the model being tuned is, for the control's purpose.
Setting = Literal["scratch", "vectors", "text", "image"]
SETTING_OF_FAMILY: dict[str, Setting] = {
    "identity": "vectors",
    "minilm": "text",
    "hf": "text",
    "sentence-transformers": "text",
    "timm": "image",
    "torchvision": "image",
    "mlp": "scratch",
    "convnet": "scratch",
}
CONTROL_LOSS = "TripletMarginLoss"  # from scratch
PRETRAINED_BACKBONE_LR_FACTOR = 0.1  # a pretrained CNN's step, as a share of its fresh head's
TEXT_LR = 2.0e-5
TEXT_WARMUP_SHARE = 0.1  # of the training steps


def setting_of(family: BackboneFamily | str) -> Setting:
    return SETTING_OF_FAMILY.get(family, "scratch")


def control_recipe(spec: SpaceSpec, setting: Setting = "scratch") -> Recipe:
    """The practitioner's recipe for a model of `setting` (see the module's docstring)."""
    recipe = _control(spec, setting)
    margins = "margin" in recipe.loss_params or "margin" in recipe.miner_params
    return replace(recipe, margin_mode="default" if margins else "none")


def _control(spec: SpaceSpec, setting: Setting) -> Recipe:
    if setting == "text":
        return Recipe(
            loss="NTXentLoss",
            loss_params=_defaults("NTXentLoss"),  # PML's temperature, 0.07, as for vectors
            lr=TEXT_LR,
            backbone_lr_factor=1.0,
            weight_decay=0.01,
            warmup_epochs=TEXT_WARMUP_SHARE * spec.train.epochs,
            head="none",
            optimizer="adamw",
        )
    if setting == "image":
        return Recipe(
            loss="MultiSimilarityLoss",
            miner="MultiSimilarityMiner",
            loss_params=_defaults("MultiSimilarityLoss"),
            miner_params=_miner_defaults("MultiSimilarityMiner"),
            lr=1.0e-3,
            backbone_lr_factor=PRETRAINED_BACKBONE_LR_FACTOR,
            weight_decay=1.0e-4,
            optimizer="adamw",
        )
    if setting == "vectors":
        return Recipe(
            loss="NTXentLoss",
            loss_params=_defaults("NTXentLoss"),
            lr=5.0e-4,
            weight_decay=0.01,
            head="linear",
            optimizer="adamw",
        )
    lr = resolve_constant(spec.search.params.get("lr"))
    return Recipe(
        loss=CONTROL_LOSS,
        loss_params=_defaults(CONTROL_LOSS),
        lr=float(lr) if isinstance(lr, int | float) else DEFAULT_LR,
    )


def _defaults(loss: str, **overrides: float) -> dict[str, object]:
    info = catalog.loss_info(loss).params
    return {name: overrides.get(name, param.default) for name, param in info.items()}


def _miner_defaults(miner: str) -> dict[str, object]:
    info = catalog.miner_info(miner)
    return {} if info is None else {name: p.default for name, p in info.params.items()}
