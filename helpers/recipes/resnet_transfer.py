"""Notebook 04's recipes: ResNet from scratch, an ImageNet network as linear probe and fine-tuned, DermaMNIST.

cpu, 64 px on a 2-core CPU (train img/s: resnet18 ~380, efficientnet_lite0 ~200; ~7,000 train images):
2 ResNet runs x 8 epochs ~ 6 min, probe ~1 min, fine-tune 6 epochs ~ 4 min, DermaMNIST 28 px ~1 min,
64 px ResNet ~3 min and fine-tune ~4 min, fine-tune at 28 px ~1 min: about 21 minutes in all.
128 px DermaMNIST only on gpu (4x the 64 px cost: another ~15 minutes here). The pretrained arms fall
back to EfficientNet-Lite0 (weights shipped in a pip package) where the ResNet's weights are unavailable.
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
    "smoke": {"depth": 18, "image_size": 32, "epochs": 2, "probe_epochs": 1, "finetune_epochs": 2,
              "dermamnist_sizes": [28], "dermamnist_best_sizes": [28], "dermamnist_epochs": 1},
    "cpu": {"depth": 18, "image_size": 64, "epochs": 8, "probe_epochs": 4, "finetune_epochs": 6,
            "dermamnist_sizes": [28, 64], "dermamnist_best_sizes": [28, 64], "dermamnist_epochs": 8},
    "gpu": {"depth": 18, "image_size": 128, "epochs": 30, "probe_epochs": 10, "finetune_epochs": 20,
            "dermamnist_sizes": [28, 64, 128], "dermamnist_best_sizes": [28, 64, 128], "dermamnist_epochs": 30},
}


def arms(s: Mapping[str, Any], seed: int) -> list[Arm]:
    """scratch, plain_loss, probe, finetune, dermamnist_scratch and dermamnist_finetune."""
    resnet, size = f"resnet{s['depth']}", s["image_size"]
    ours = our_recipe(s["epochs"], seed)
    tune = dataclasses.replace(ours, epochs=s["finetune_epochs"], lr=3e-3, backbone_lr=1e-3)
    derma = s["dermamnist_epochs"]
    return [
        Arm("scratch", resnet, size, ours),
        Arm("plain_loss", resnet, size, dataclasses.replace(ours, imbalance="none")),
        Arm("probe", resnet, size, dataclasses.replace(ours, epochs=s["probe_epochs"], lr=1e-2), pretrained=True,
            frozen_backbone=True, fallback=FALLBACK),
        Arm("finetune", resnet, size, tune, pretrained=True, fallback=FALLBACK),
        Arm("dermamnist_scratch", resnet, s["dermamnist_sizes"][0], dataclasses.replace(ours, epochs=derma),
            sizes=tuple(s["dermamnist_sizes"])),
        Arm("dermamnist_finetune", resnet, s["dermamnist_best_sizes"][0], dataclasses.replace(tune, epochs=derma),
            pretrained=True, fallback=FALLBACK, sizes=tuple(s["dermamnist_best_sizes"])),
    ]


RECIPES = NotebookRecipes(NOTEBOOK, SETTINGS, arms)
