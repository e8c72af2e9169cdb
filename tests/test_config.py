"""The resolved configuration: presets, the notebook's recipe applied to it, and the banner that prints it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.config import banner, resolve_config, with_recipe


def test_recipe_settings_replace_the_preset_defaults_in_config_and_banner(synthetic_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKIN_LESION_PRESET", raising=False)
    config = resolve_config("cpu", data_dir=str(synthetic_dir), seed=3, depth=18)
    applied = with_recipe(config, {"image_size": 96, "epochs": 30, "reference_epochs": 3, "sizes": [28, 64]})
    assert (applied.image_size, applied.epochs, applied.batch_size) == (96, 30, config.batch_size)
    assert applied.extra == {"depth": 18, "reference_epochs": 3, "sizes": [28, 64]}
    assert config.epochs != 30 and config.extra == {"depth": 18}  # the original is untouched
    text = banner(applied)
    assert "image size 96px | epochs 30" in text and "reference_epochs = 3" in text and "depth = 18" in text
    assert json.loads(json.dumps(applied.to_dict()))["extra"]["sizes"] == [28, 64]  # saved next to results as JSON


def test_recipes_accept_the_earlier_names_of_renamed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.recipes import RECIPES, RENAMED_SETTINGS, recipe

    monkeypatch.delenv("SKIN_LESION_CHECK", raising=False)
    for notebook, presets in RECIPES.items():
        assert not set(RENAMED_SETTINGS) & set(presets["cpu"]), f"{notebook} still uses an earlier name"
    # the notebooks' parameters cells keep seed_epochs: it sets reference_epochs, and errors name it as passed
    assert recipe("03_custom_cnn", "cpu", seed_epochs=2)["reference_epochs"] == 2
    default = RECIPES["05_efficientnet_binary"]["cpu"]["reference_epochs"]
    assert recipe("05_efficientnet_binary", "cpu", seed_epochs=None)["reference_epochs"] == default
    assert "seed_epochs" not in recipe("03_custom_cnn", "cpu", seed_epochs=2)
    with pytest.raises(ValueError, match="parameter seed_image_size must be a whole number"):
        recipe("03_custom_cnn", "cpu", seed_image_size=0)
    with pytest.raises(ValueError, match="both its name and its earlier name"):
        recipe("03_custom_cnn", "cpu", seed_epochs=2, reference_epochs=3)
    with pytest.raises(ValueError, match="unknown parameter.*seed_image_size"):
        recipe("05_efficientnet_binary", "cpu", seed_image_size=64)
