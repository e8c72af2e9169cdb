"""Notebook 02's recipe: the leakage demonstration, one model and one recipe trained twice.

The model is trained on an image-level split and on the lesion-disjoint split. No augmentation and the last
epoch kept, so that the model can memorise its training images within a short budget; cpu: about 2 minutes
per training on a 2-core CPU (full data, 64 px, ~900 img/s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


from ...data.dataset import SplitData, load_split_data
from ...evaluation.splits import Evaluation, evaluate_split
from ...training.augment import AugmentConfig
from ...training.loop import FitResult, TrainConfig, fit
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


@dataclass
class SplitRuns:
    """One arm trained afresh on each kind of split: per label, the data, the training run and its test evaluation."""

    data: dict[str, SplitData]
    fits: dict[str, FitResult]
    evaluations: dict[str, Evaluation]


def train_on_splits(config: Any, arm: Any, labels: Mapping[str, str], seed: int = 0, progress: bool = False) -> SplitRuns:
    """Train arm on each split kind of labels (kind -> row label) from the same initial weights; test each on its own split.

    config gives the data (data_root, max_images, data_source) and the input size; a line per run is printed.
    """
    runs = SplitRuns({}, {}, {})
    for kind, label in labels.items():
        data = load_split_data(config.data_root, arm.image_size, split=kind, max_images=config.max_images, seed=seed,
                               name=config.data_source, progress=progress)
        net = arm.build(data.classes).to(data.train.device)  # seeded by the arm: the same initial weights on every split
        runs.data[label], runs.fits[label] = data, fit(net, data.train, data.val, arm.train)
        runs.evaluations[label] = evaluate_split(net, data, seed=seed)
        print(f"{label}: {arm.train.epochs} epochs on {len(data.train):,} images in {runs.fits[label].wall_time_s:.0f} s")
    return runs
