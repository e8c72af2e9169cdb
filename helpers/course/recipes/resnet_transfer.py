"""Notebook 04's recipes: ResNet from scratch, an ImageNet network as linear probe and fine-tuned, DermaMNIST.

cpu, measured in the series run of 2026-12-02 on a 2-core Intel Xeon (family 6 model 167; ~7,000 train
images; EfficientNet's depthwise layers trained in fp32, helpers.core.precision): ResNet-18 8 epochs at 64 px
3.4 min (twice: weighted and plain loss), the linear probe on cached 128 px features and fine-tuning 6 epochs
at 96 px 7.4 min together, evaluation, TTA and calibration 1.4 min, DermaMNIST (ResNet-18 at 28 and 64 px,
Lite0 at 64 px, 8 epochs each) 9.1 min: 25 minutes in all. Lite0 at 28 px on DermaMNIST only on gpu: it scored
below ResNet-18 from scratch at 28 px (0.718 against 0.735 accuracy, 2026-12-02) for over twice its time.
Why 128 px for the probe and 96 px for fine-tuning:
benchmarks/README.md, "Training levers". Why 10 fine-tuning epochs, not 6 (since 2026-12-08; the timings above
are for 6): chosen on validation, balanced accuracy 0.703 -> 0.735 (test 0.662 -> 0.689) for 1.73x the training
time, benchmarks/README.md, "More fine-tuning epochs"; the reports of 2026-12-07 predate it. 128 px DermaMNIST
only on gpu (4x the 64 px cost). The pretrained arms fall back to EfficientNet-Lite0 (weights shipped in a pip
package) where the ResNet's weights are unavailable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ...data.dataset import load_split_data
from ...data.source import find_dermamnist_csv
from ...data.splits import leaked_lesions
from ...evaluation.published import dermamnist_comparison
from ...evaluation.splits import evaluate_split
from ...training.loop import fit
from .arms import Arm, NotebookRecipes
from .custom_cnn import our_recipe

NOTEBOOK = "04_resnet_transfer"
FALLBACK = "efficientnet_lite0"
SETTINGS = {
    "smoke": {"depth": 18, "image_size": 32, "epochs": 2, "probe_image_size": 32, "pretrained_image_size": 32,
              "finetune_epochs": 2, "dermamnist_sizes": [28], "dermamnist_best_sizes": [28], "dermamnist_epochs": 1},
    "cpu": {"depth": 18, "image_size": 64, "epochs": 8, "probe_image_size": 128, "pretrained_image_size": 96,
            "finetune_epochs": 10, "dermamnist_sizes": [28, 64], "dermamnist_best_sizes": [64], "dermamnist_epochs": 8},
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
