"""Recipes several test modules read: a tied and a separate triplet margin, and a contrastive
loss with no miner (what the recipe's naming and MLflow params are tested on)."""

from __future__ import annotations

from minesearch.recipe import Recipe

TRIPLET = Recipe(
    loss="TripletMarginLoss",
    miner="TripletMarginMiner",
    loss_params={"margin": 0.2},
    miner_params={"margin": 0.2, "type_of_triplets": "semihard"},
    lr=0.00123456789,
    margin_mode="tied",
)
SEPARATE = Recipe(
    loss="TripletMarginLoss",
    miner="TripletMarginMiner",
    loss_params={"margin": 0.05},
    miner_params={"margin": 0.3, "type_of_triplets": "hard"},
    margin_mode="separate",
)
CONTRASTIVE = Recipe(
    loss="ContrastiveLoss",
    miner="none",
    loss_params={"pos_margin": 0.0, "neg_margin": 1.0},
)
