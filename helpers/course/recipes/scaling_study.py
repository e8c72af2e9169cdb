"""Notebook 06's recipe: the scaling grid per preset and the fixed training recipe of every row.

Grid (helpers.scaling.build_grid): `models` from scratch x `fractions` x `seeds` (fractions <= seeds_up_to get
every seed, larger ones the first), plus pretrained and scratch arms of each of `pretrained_models` whose
ImageNet weights are on the machine, at `pretrained_fractions`. Every run: `epochs` validation rounds, the
subset repeated round(min_images / (epochs x n)) times (at least once) within a round, so every run sees about
max(epochs x n, min_images) images; AdamW one-cycle, the rest of the recipe in FIXED_RECIPE below.
cpu, 64 px, 2-core CPU, ~7,000 train images (nested subsets 367/705/1,762/3,502/7,005 images), 32 runs:
train img/s alexnet 259, resnet18 381, vit_tiny 392, mixer_small 185, lite0 204; evaluation (2 val rounds +
test, 1,505 images each) measured 311 (mixer_small) to 1,800 img/s. Per arm (7 runs; lite0 arms 2 runs):
alexnet ~190 s, resnet18 ~130 s, vit_tiny ~120 s, mixer_small ~300 s, lite0 pretrained + scratch ~180 s:
~15.5 minutes of runs, plus data, fits and plots: about 16 minutes (estimates for an AMD EPYC; measured
2026-12-02 on a 2-core Intel Xeon, family 6 model 167, with Lite0's depthwise layers trained in fp32: 14.1
minutes). Dropped against full: resnet34/50/101/152, vit_b_16, mixer_b16_224 (vit_tiny and mixer_small stand
in), fraction 0.02, seed 2, seed 1 above 0.1, 128 px.
gpu (not measured: the cost model's estimate): 45 runs at 128 px, 5 architectures from scratch at 5 training-set
sizes and 4 pretrained-vs-scratch contrasts, about 13-18 minutes on a T4. full: the reference study's 172 runs
(ResNet-18 to -152, ViT-B/16 and Mixer-B/16 at 224 px), 7-10 hours on a T4 and 1-2 on an A100 by the cost model:
use `python -m helpers.scaling --preset full --shard K/N` on N GPUs, then run the notebook to merge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...training.augment import AugmentConfig
from .arms import NotebookRecipes

NOTEBOOK = "06_scaling_study"
SETTINGS: dict[str, dict[str, Any]] = {
    "smoke": {"models": ["improved_cnn", "vit_tiny"], "image_size": 32, "fractions": [0.25, 0.5, 1.0],
              "seeds": [0, 1], "seeds_up_to": 0.25, "pretrained_models": ["efficientnet_lite0"],
              "pretrained_fractions": [0.25], "epochs": 1, "min_images": 64, "batch_size": 32, "lr": 2e-3,
              "pretrained_lr": 2e-3, "weight_decay": 0.05, "n_boot": 100, "resume": False},
    "cpu": {"models": ["alexnet", "resnet18", "vit_tiny", "mixer_small"], "image_size": 64,
            "fractions": [0.05, 0.1, 0.25, 0.5, 1.0], "seeds": [0, 1], "seeds_up_to": 0.1,
            "pretrained_models": ["efficientnet_lite0", "resnet18", "vit_tiny"], "pretrained_fractions": [0.05, 1.0],
            "epochs": 2, "min_images": 3200, "batch_size": 64, "lr": 1e-3, "pretrained_lr": 1e-3,
            "weight_decay": 0.05, "n_boot": 1000, "resume": True},
    # sized by the cost model for a free Colab T4: 45 runs, about 13-18 minutes there (python -m helpers.budget)
    "gpu": {"models": ["alexnet", "resnet18", "resnet50", "vit_tiny", "mixer_small"], "image_size": 128,
            "fractions": [0.05, 0.1, 0.25, 0.5, 1.0], "seeds": [0, 1], "seeds_up_to": 0.1,
            "pretrained_models": ["resnet18", "resnet50", "vit_tiny", "efficientnet_lite0"],
            "pretrained_fractions": [0.05, 1.0], "epochs": 10, "min_images": 20000, "batch_size": 128, "lr": 1e-3,
            "pretrained_lr": 1e-4, "weight_decay": 0.05, "n_boot": 1000, "resume": True},
    "full": {"models": ["alexnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_b_16",
                       "mixer_b16_224"], "image_size": 128, "image_sizes": {"vit_b_16": 224, "mixer_b16_224": 224},
            "fractions": [0.02, 0.05, 0.1, 0.25, 0.5, 1.0], "seeds": [0, 1, 2], "seeds_up_to": 0.25,
            "pretrained_models": ["alexnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_b_16",
                                  "mixer_b16_224", "efficientnet_lite0"],
            "pretrained_fractions": [0.02, 0.05, 0.1, 0.25, 0.5, 1.0], "epochs": 30, "min_images": 60000,
            "batch_size": 128, "lr": 5e-4, "pretrained_lr": 1e-4, "weight_decay": 0.05, "n_boot": 1000,
            "resume": True},
}

# The training recipe of every row; only the settings of helpers.scaling.ScalingRow vary. Part of each row's id
# (helpers.scaling.row_id hashes it), so any change here changes every id and retrains a resumed grid.
FIXED_RECIPE: dict[str, Any] = {
    "optimizer": "adamw", "schedule": "onecycle", "label_smoothing": 0.1, "imbalance": "weighted_loss",
    "class_weight_power": 0.5, "monitor": "val_balanced_accuracy", "restore_best": True,
    "augment": dataclasses.asdict(AugmentConfig()),
    # PyTorch's default for every model: EfficientNet-Lite0 ships 0.01, whose running statistics lag far
    # behind the weights in runs of a few dozen steps, so its evaluation would measure the lag, not the data.
    "batchnorm_momentum": 0.1,
}

RECIPES = NotebookRecipes(NOTEBOOK, SETTINGS)  # no named arms: helpers.scaling.build_grid makes one row per run


# ---------------------------------------------------------------- the grid (helpers.scaling runs it)


@dataclass(frozen=True)
class ScalingRow:
    """One run of the grid: what is trained, on how much data, for how long."""

    model: str
    pretrained: bool
    fraction: float
    seed: int
    image_size: int
    epochs: int  # validation rounds; see `repeats`
    min_images: int  # every run sees at least about this many training images
    batch_size: int
    lr: float
    weight_decay: float
    subset_seed: int = 0  # the order of lesions behind the nested subsets: fixed across rows

    @property
    def label(self) -> str:
        """The arm this row belongs to: the model name, with ' (pretrained)' for ImageNet weights."""
        return f"{self.model} (pretrained)" if self.pretrained else self.model


def repeats(row: ScalingRow, n_train: int) -> int:
    """How often the subset is repeated within one epoch: round(min_images / (epochs x n)), at least once."""
    return max(1, round(row.min_images / (row.epochs * n_train)))


def build_grid(settings: dict[str, Any], subset_seed: int = 0,
               can_pretrain: Callable[[str], bool] | None = None) -> list[ScalingRow]:
    """The rows of a preset's grid: models x fractions x seeds from scratch, plus pretrained-vs-scratch arms.

    Fractions up to settings['seeds_up_to'] get every seed, larger ones the first. Pretrained arms run for
    the models in settings['pretrained_models'] whose weights `can_pretrain` (default: on this machine),
    each beside a from-scratch arm of the same model at settings['pretrained_fractions'].
    """
    if can_pretrain is None:
        from ...models import pretrained_available as can_pretrain
    rows: dict[tuple, ScalingRow] = {}

    def add(model: str, pretrained: bool, fraction: float, seed: int) -> None:
        row = ScalingRow(model, pretrained, float(fraction), int(seed), image_size_of(settings, model),
                         int(settings["epochs"]), int(settings["min_images"]), int(settings["batch_size"]),
                         float(settings["pretrained_lr" if pretrained else "lr"]), float(settings["weight_decay"]),
                         subset_seed)
        rows.setdefault((model, pretrained, row.fraction, seed), row)

    for fraction in settings["fractions"]:
        seeds = settings["seeds"] if fraction <= settings["seeds_up_to"] else settings["seeds"][:1]
        for seed in seeds:
            for model in settings["models"]:
                add(model, False, fraction, seed)
    for model in (m for m in settings["pretrained_models"] if can_pretrain(m)):
        for fraction in settings["pretrained_fractions"]:
            add(model, True, fraction, settings["seeds"][0])
            add(model, False, fraction, settings["seeds"][0])
    return list(rows.values())


def image_size_of(settings: dict[str, Any], model: str) -> int:
    """The input size of a model under these settings (patch models may have their own)."""
    return int(settings.get("image_sizes", {}).get(model, settings["image_size"]))
