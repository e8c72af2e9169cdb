"""Notebook 04's recipes: ResNet from scratch, an ImageNet network as linear probe and fine-tuned, DermaMNIST.

cpu, measured in the series run of 2026-12-02 on a 2-core Intel Xeon (family 6 model 167; ~7,000 train
images; EfficientNet's depthwise layers trained in fp32, helpers.precision): ResNet-18 8 epochs at 64 px
3.4 min (twice: weighted and plain loss), the linear probe on cached 128 px features and fine-tuning 6 epochs
at 96 px 7.4 min together, evaluation, TTA and calibration 1.4 min, DermaMNIST (ResNet-18 at 28 and 64 px,
Lite0 at 64 px, 8 epochs each) 9.1 min: 25 minutes in all. Lite0 at 28 px on DermaMNIST only on gpu: it scored
below ResNet-18 from scratch at 28 px (0.718 against 0.735 accuracy, 2026-12-02) for over twice its time.
Why 128 px for the probe and 96 px for fine-tuning:
benchmarks/README.md, "Training levers". 128 px DermaMNIST only on gpu (4x the 64 px cost). The pretrained
arms fall back to EfficientNet-Lite0 (weights shipped in a pip package) where the ResNet's weights are
unavailable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .arms import Arm, NotebookRecipes
from .custom_cnn import our_recipe

NOTEBOOK = "04_resnet_transfer"
FALLBACK = "efficientnet_lite0"
SETTINGS = {
    "smoke": {"depth": 18, "image_size": 32, "epochs": 2, "probe_image_size": 32, "pretrained_image_size": 32,
              "finetune_epochs": 2, "dermamnist_sizes": [28], "dermamnist_best_sizes": [28], "dermamnist_epochs": 1},
    "cpu": {"depth": 18, "image_size": 64, "epochs": 8, "probe_image_size": 128, "pretrained_image_size": 96,
            "finetune_epochs": 6, "dermamnist_sizes": [28, 64], "dermamnist_best_sizes": [64], "dermamnist_epochs": 8},
    "gpu": {"depth": 18, "image_size": 128, "epochs": 30, "probe_image_size": 224, "pretrained_image_size": 128,
            "finetune_epochs": 20, "dermamnist_sizes": [28, 64, 128], "dermamnist_best_sizes": [28, 64, 128],
            "dermamnist_epochs": 30},
    "full": {"depth": 18, "image_size": 128, "epochs": 30, "probe_image_size": 224, "pretrained_image_size": 128,
            "finetune_epochs": 20, "dermamnist_sizes": [28, 64, 128], "dermamnist_best_sizes": [28, 64, 128],
            "dermamnist_epochs": 30},
}


def arms(s: Mapping[str, Any], seed: int) -> list[Arm]:
    """scratch, plain_loss, probe, finetune, dermamnist_scratch and dermamnist_finetune."""
    resnet, size, pretrained_size = f"resnet{s['depth']}", s["image_size"], s["pretrained_image_size"]
    ours = our_recipe(s["epochs"], seed)
    tune = dataclasses.replace(ours, epochs=s["finetune_epochs"], lr=3e-3, backbone_lr=1e-3)
    derma = s["dermamnist_epochs"]
    return [
        Arm("scratch", resnet, size, ours),
        Arm("plain_loss", resnet, size, dataclasses.replace(ours, imbalance="none")),
        Arm("probe", resnet, s["probe_image_size"], ours, pretrained=True, frozen_backbone=True, fallback=FALLBACK),
        Arm("finetune", resnet, pretrained_size, tune, pretrained=True, fallback=FALLBACK),
        Arm("dermamnist_scratch", resnet, s["dermamnist_sizes"][0], dataclasses.replace(ours, epochs=derma),
            sizes=tuple(s["dermamnist_sizes"])),
        Arm("dermamnist_finetune", resnet, s["dermamnist_best_sizes"][0], dataclasses.replace(tune, epochs=derma),
            pretrained=True, fallback=FALLBACK, sizes=tuple(s["dermamnist_best_sizes"])),
    ]


RECIPES = NotebookRecipes(NOTEBOOK, SETTINGS, arms)
