"""Notebook 02's recipe: the leakage demonstration, one model and one recipe trained twice.

The model is trained on an image-level split and on the lesion-disjoint split. No augmentation and the last
epoch kept, so that the model can memorise its training images within a short budget; cpu: about 2 minutes
per training on a 2-core CPU (full data, 64 px, ~900 img/s).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..augment import AugmentConfig
from ..training import TrainConfig
from .arms import Arm, NotebookRecipes

NOTEBOOK = "02_preprocessing"
SETTINGS = {
    "smoke": {"model": "improved_cnn", "image_size": 32, "epochs": 2, "batch_size": 32, "lr": 2e-3, "augment": False},
    "cpu": {"model": "improved_cnn", "image_size": 64, "epochs": 12, "batch_size": 64, "lr": 2e-3, "augment": False},
    "gpu": {"model": "improved_cnn", "image_size": 128, "epochs": 30, "batch_size": 128, "lr": 2e-3, "augment": False},
    "full": {"model": "improved_cnn", "image_size": 128, "epochs": 30, "batch_size": 128, "lr": 2e-3, "augment": False},
}


def arms(s: Mapping[str, Any], seed: int) -> list[Arm]:
    """The one arm, trained on each split."""
    augment = AugmentConfig() if s["augment"] else AugmentConfig.none()
    train = TrainConfig(epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"], restore_best=False,
                        augment=augment, seed=seed, progress=False)
    return [Arm("leakage", s["model"], s["image_size"], train)]


RECIPES = NotebookRecipes(NOTEBOOK, SETTINGS, arms)
