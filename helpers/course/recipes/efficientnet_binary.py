"""Notebook 05's recipes: EfficientNet (ImageNet) benign vs malignant, the reference recipe and ours.

Task A, melanoma10k: the reference recipe, then ours; task B, HAM10000 binary: ours with class weights.
cpu, 64 px, measured in the series run of 2026-12-02 on a 2-core Intel Xeon (family 6 model 167; depthwise
layers trained in fp32, helpers.core.precision; A has ~8,600 train images, B ~7,000): reference recipe capped at
3 of its 10 epochs 2.2 min, ours 5 epochs 3.3 min, B 6 epochs 3.2 min, caching, hashing and evaluation the
rest: 9.3 minutes in all. gpu: 224 px and the reference's full 10.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...training.augment import AugmentConfig
from ...training.loop import TrainConfig
from .arms import Arm, NotebookRecipes

NOTEBOOK = "05_efficientnet_binary"
MODEL, FALLBACK = "efficientnet_b0", "efficientnet_lite0"
SETTINGS = {
    "smoke": {"image_size": 32, "reference_epochs": 1, "epochs": 1, "ham_epochs": 1, "lr": 2e-3},
    "cpu": {"image_size": 64, "reference_epochs": 3, "epochs": 5, "ham_epochs": 6, "lr": 2e-3},
    "gpu": {"image_size": 224, "reference_epochs": 10, "epochs": 12, "ham_epochs": 15, "lr": 2e-3},
    "full": {"image_size": 224, "reference_epochs": 10, "epochs": 12, "ham_epochs": 15, "lr": 2e-3},
}


def arms(s: Mapping[str, Any], seed: int) -> list[Arm]:
    """reference (the reference notebook's Adadelta recipe), ours (task A) and ham (task B)."""
    reference = TrainConfig(epochs=s["reference_epochs"], batch_size=32, optimizer="adadelta", lr=1.0, adadelta_rho=0.9,
                            adadelta_eps=1e-6, weight_decay=0.0, schedule="constant", augment=AugmentConfig.none(),
                            monitor="val_loss", patience=2, min_delta=0.001, restore_best=False, seed=seed)
    ours = TrainConfig(epochs=s["epochs"], batch_size=64, optimizer="adamw", lr=s["lr"], backbone_lr=s["lr"] / 2,
                       weight_decay=1e-2, schedule="onecycle", label_smoothing=0.1, augment=AugmentConfig(),
                       monitor="val_loss", seed=seed)
    ham = dataclasses.replace(ours, epochs=s["ham_epochs"], imbalance="weighted_loss", class_weight_power=0.5)
    size = s["image_size"]
    return [Arm(name, MODEL, size, train, pretrained=True, fallback=FALLBACK)
            for name, train in (("reference", reference), ("ours", ours), ("ham", ham))]


RECIPES = NotebookRecipes(NOTEBOOK, SETTINGS, arms)
