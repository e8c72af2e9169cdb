"""Published results this course compares against, with their sources, and tables that put ours beside them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

# Test-set figures on the official DermaMNIST split (2,005 test images), as published.
DERMAMNIST_PUBLISHED: tuple[dict[str, Any], ...] = (
    {"source": "MedMNIST v2 (Yang et al. 2023)", "model": "ResNet-18 (28)", "input_px": 28, "accuracy": 0.735, "auc": 0.917},
    {"source": "MedMNIST v2 (Yang et al. 2023)", "model": "ResNet-18 (224, upsampled from 28)", "input_px": 224,
     "accuracy": 0.754, "auc": 0.920},
    {"source": "MedMNIST v2 (Yang et al. 2023)", "model": "Google AutoML Vision", "input_px": 28, "accuracy": 0.768, "auc": None},
    {"source": "MedMNIST+ (Doerrich et al. 2024)", "model": "ResNet-18, ImageNet-pretrained, end-to-end", "input_px": 64,
     "accuracy": 0.764, "auc": None},
    {"source": "MedMNIST+ (Doerrich et al. 2024)", "model": "ResNet-18, ImageNet-pretrained, end-to-end", "input_px": 128,
     "accuracy": 0.792, "auc": None},
)

# DermaMNIST-E (Abhishek, Jain & Hamarneh, Sci Data 2025): ResNet-18 at 224 px trained on all of HAM10000,
# tested on the ISIC 2018 Task 3 test set, as published.
DERMAMNIST_E = {"source": "DermaMNIST-E (Abhishek et al. 2025)", "model": "ResNet-18, 224 px, all of HAM10000",
                "accuracy": 0.685, "macro_auc": 0.900}


def dermamnist_comparison(ours: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Published DermaMNIST rows and ours (name -> {input_px, accuracy, macro_auc, balanced_accuracy}), by input size."""
    published = pd.DataFrame(DERMAMNIST_PUBLISHED)
    mine = pd.DataFrame([{"source": "this course", "model": name, "input_px": entry["input_px"],
                          "accuracy": entry["accuracy"], "auc": entry.get("macro_auc"),
                          "balanced_accuracy": entry.get("balanced_accuracy")} for name, entry in ours.items()])
    table = pd.concat([published, mine], ignore_index=True)
    return table.sort_values(["input_px", "source"], kind="stable").reset_index(drop=True)
