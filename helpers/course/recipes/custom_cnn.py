"""Notebook 03's recipes: the reference notebook's CNN and recipe (with and without dropout) and our improved CNN.

The reference recipe: the reference CNN at 128 px, batch 16, Adam 1e-4, 25 epochs, plain cross-entropy.
cpu, measured in the series run of 2026-12-02 on a 2-core Intel Xeon (family 6 model 167): 5 reference-recipe
epochs with dropout 5.2 min and 5 without 5.0 min (~1 min per epoch with its validation), the improved CNN
(30 epochs at 64 px) 4.8 min: 15.5 minutes in all. 8 reference epochs each (0.763 accuracy against 0.733 at 5)
made the notebook 22 minutes, too many for the series' 75.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...training.augment import AugmentConfig
from ...training.loop import TrainConfig
from .arms import Arm, NotebookRecipes

NOTEBOOK = "03_custom_cnn"
SETTINGS = {
    "smoke": {"reference_image_size": 32, "reference_epochs": 1, "image_size": 32, "epochs": 2, "dropout_epochs": 1},
    "cpu": {"reference_image_size": 128, "reference_epochs": 5, "image_size": 64, "epochs": 30, "dropout_epochs": 5},
    "gpu": {"reference_image_size": 128, "reference_epochs": 25, "image_size": 128, "epochs": 40,
            "dropout_epochs": 25},
    "full": {"reference_image_size": 128, "reference_epochs": 25, "image_size": 128, "epochs": 40,
            "dropout_epochs": 25},
}


def reference_recipe(epochs: int, seed: int) -> TrainConfig:
    """The reference notebook's recipe: batch 16, Adam 1e-4, constant rate, no augmentation, last epoch kept."""
    return TrainConfig(epochs=epochs, batch_size=16, optimizer="adam", lr=1e-4, weight_decay=0.0, schedule="constant",
                       augment=AugmentConfig.none(), restore_best=False, seed=seed)


def our_recipe(epochs: int, seed: int) -> TrainConfig:
    """Our recipe (03 and 04): AdamW one-cycle 3e-3, label smoothing, square-root class weights, augmentation."""
    return TrainConfig(epochs=epochs, batch_size=64, optimizer="adamw", lr=3e-3, weight_decay=1e-4, schedule="onecycle",
                       label_smoothing=0.1, imbalance="weighted_loss", class_weight_power=0.5, augment=AugmentConfig(),
                       monitor="val_balanced_accuracy", seed=seed)


def arms(s: Mapping[str, Any], seed: int) -> list[Arm]:
    """reference, reference_no_dropout and improved."""
    reference = reference_recipe(s["reference_epochs"], seed)
    return [
        Arm("reference", "reference_cnn", s["reference_image_size"], reference),
        Arm("reference_no_dropout", "reference_cnn", s["reference_image_size"],
            dataclasses.replace(reference, epochs=s["dropout_epochs"]), model_kwargs={"dropout": 0.0}),
        Arm("improved", "improved_cnn", s["image_size"], our_recipe(s["epochs"], seed)),
    ]


RECIPES = NotebookRecipes(NOTEBOOK, SETTINGS, arms)
