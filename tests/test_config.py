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
    applied = with_recipe(config, {"image_size": 96, "epochs": 30, "seed_epochs": 3, "sizes": [28, 64]})
    assert (applied.image_size, applied.epochs, applied.batch_size) == (96, 30, config.batch_size)
    assert applied.extra == {"depth": 18, "seed_epochs": 3, "sizes": [28, 64]}
    assert config.epochs != 30 and config.extra == {"depth": 18}  # the original is untouched
    text = banner(applied)
    assert "image size 96px | epochs 30" in text and "seed_epochs = 3" in text and "depth = 18" in text
    assert json.loads(json.dumps(applied.to_dict()))["extra"]["sizes"] == [28, 64]  # saved next to results as JSON
