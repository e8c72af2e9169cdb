"""Published results this course compares against, with their sources, and tables that put ours beside them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .data.dataset import load_split_data
from .data.source import find_dermamnist_csv
from .data.splits import leaked_lesions
from .evaluation import evaluate_split
from .training import fit

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


def dermamnist_comparison(ours: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Published DermaMNIST rows and ours (name -> {input_px, accuracy, macro_auc, balanced_accuracy}), by input size."""
    published = pd.DataFrame(DERMAMNIST_PUBLISHED)
    mine = pd.DataFrame([{"source": "this course", "model": name, "input_px": entry["input_px"],
                          "accuracy": entry["accuracy"], "auc": entry.get("macro_auc"),
                          "balanced_accuracy": entry.get("balanced_accuracy")} for name, entry in ours.items()])
    table = pd.concat([published, mine], ignore_index=True)
    return table.sort_values(["input_px", "source"], kind="stable").reset_index(drop=True)


@dataclass
class DermaMNISTRuns:
    """Our models trained and tested on the official DermaMNIST split: their summaries, its leak, what was skipped."""

    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # name (with input size) -> summary + input_px
    leaked_test_lesions: int | None = None
    sizes_skipped: list[int] = field(default_factory=list)  # sizes the gpu preset runs and this preset does not
    skipped_because: str | None = None  # why nothing ran, when nothing did

    def table(self) -> pd.DataFrame:
        """Published rows and ours, by input size (`dermamnist_comparison`)."""
        return dermamnist_comparison(self.models)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the metrics JSON."""
        return {"split": "dermamnist_official", "models": self.models, "leaked_test_lesions": self.leaked_test_lesions,
                "sizes_skipped": self.sizes_skipped}


def dermamnist_runs(config: Any, scratch_name: str, pretrained_name: str, pretrained_arch: str,
                    split_csv: str | Path | None = None, seed: int = 0) -> DermaMNISTRuns:
    """Train the recipe's dermamnist_scratch arm (and dermamnist_finetune at dermamnist_best_sizes) per input size.

    config: the notebook's Config (its data, settings dermamnist_sizes / dermamnist_best_sizes and arms);
    split_csv: the official split CSV (None: $DERMAMNIST_SPLIT_CSV, then data/dermamnist_split.csv).
    Skipped, saying why, without the CSV or on the synthetic set (which has no DermaMNIST image ids).
    """
    settings = config.settings
    runs = DermaMNISTRuns(sizes_skipped=[px for px in config.recipe.of_preset("full").settings["dermamnist_sizes"]
                                         if px not in settings["dermamnist_sizes"]])
    found = find_dermamnist_csv(split_csv)
    if found is None or config.data_source == "synthetic":
        runs.skipped_because = ("no split CSV (set $DERMAMNIST_SPLIT_CSV or dermamnist_csv)" if found is None
                                else "the synthetic demo set has no DermaMNIST image ids")
        return runs
    for px in settings["dermamnist_sizes"]:
        official = load_split_data(config.data_root, px, split="dermamnist_official", split_csv=found, seed=seed,
                                   max_images=config.max_images, name=config.data_source)
        arms = {scratch_name: config.arm("dermamnist_scratch", image_size=px)}
        if px in settings["dermamnist_best_sizes"]:
            arms[pretrained_name] = config.arm("dermamnist_finetune", model=pretrained_arch, image_size=px)
        for label, arm in arms.items():
            model = arm.build(official.classes)
            fit(model, official.train, official.val, arm.train)
            summary = evaluate_split(model, official, "test", seed=seed).summary
            runs.models[f"{label} ({px} px)"] = {**summary, "input_px": px}
        runs.leaked_test_lesions = leaked_lesions(official.index, official.index["split"])
    return runs
