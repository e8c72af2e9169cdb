"""Per-notebook settings for each preset: what `smoke`, `cpu` and `gpu` train, in one place.

`cpu` is sized so the whole series runs in about an hour on a 2-core laptop-class CPU; `gpu` uses the
full settings of the seed notebooks; `smoke` runs each notebook in seconds on tiny data for tests.
"""

from __future__ import annotations

from typing import Any

RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "02_preprocessing": {
        # The leakage demonstration: one model, one recipe, trained twice (image-level vs lesion-disjoint split).
        # No augmentation and the last epoch kept, so that the model can memorise its training images within a
        # short budget; cpu: about 2 minutes per training on a 2-core CPU (full data, 64 px, ~900 img/s).
        "smoke": {"model": "improved_cnn", "image_size": 32, "epochs": 2, "lr": 2e-3, "augment": False},
        "cpu": {"model": "improved_cnn", "image_size": 64, "epochs": 12, "lr": 2e-3, "augment": False},
        "gpu": {"model": "improved_cnn", "image_size": 128, "epochs": 30, "lr": 2e-3, "augment": False},
    },
    "03_custom_cnn": {
        # The seed recipe: seed CNN at 128 px, batch 16, Adam 1e-4, 25 epochs, plain cross-entropy.
        "smoke": {"seed_image_size": 32, "seed_epochs": 1, "image_size": 32, "epochs": 2, "dropout_epochs": 1},
        "cpu": {"seed_image_size": 128, "seed_epochs": 3, "image_size": 64, "epochs": 30, "dropout_epochs": 3},
        "gpu": {"seed_image_size": 128, "seed_epochs": 25, "image_size": 128, "epochs": 40, "dropout_epochs": 25},
    },
    "04_resnet_transfer": {
        # cpu, 64 px on a 2-core CPU (train img/s: resnet18 ~380, efficientnet_lite0 ~200; ~7,000 train images):
        # 2 ResNet runs x 8 epochs ~ 6 min, probe ~1 min, fine-tune 6 epochs ~ 4 min, DermaMNIST 28 px ~1 min,
        # 64 px ResNet ~3 min and fine-tune ~4 min: about 19 minutes in all. 128 px DermaMNIST only on gpu.
        "smoke": {"image_size": 32, "epochs": 2, "probe_epochs": 1, "finetune_epochs": 2,
                  "dermamnist_sizes": [28], "dermamnist_best_sizes": [28], "dermamnist_epochs": 1},
        "cpu": {"image_size": 64, "epochs": 8, "probe_epochs": 4, "finetune_epochs": 6,
                "dermamnist_sizes": [28, 64], "dermamnist_best_sizes": [64], "dermamnist_epochs": 8},
        "gpu": {"image_size": 128, "epochs": 30, "probe_epochs": 10, "finetune_epochs": 20,
                "dermamnist_sizes": [28, 64, 128], "dermamnist_best_sizes": [28, 64, 128], "dermamnist_epochs": 30},
    },
}


def recipe(notebook: str, preset: str, **overrides: Any) -> dict[str, Any]:
    """The settings of notebook under preset, with non-None overrides (the notebook's parameters) applied."""
    if notebook not in RECIPES:
        raise ValueError(f"no recipe for notebook {notebook!r}; known: {', '.join(RECIPES)}")
    if preset not in RECIPES[notebook]:
        raise ValueError(f"notebook {notebook} has no {preset!r} preset; known: {', '.join(RECIPES[notebook])}")
    settings = dict(RECIPES[notebook][preset])
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))} for {notebook}; known: {', '.join(settings)}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return settings
