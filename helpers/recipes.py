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
