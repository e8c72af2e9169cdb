"""The one configuration: a notebook's parameters -> preset -> recipe (setup), its banner, and what it saves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.course.config import Config, banner, resolve_config, setup


@pytest.fixture(autouse=True)
def _no_preset_or_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKIN_LESION_PRESET", raising=False)
    monkeypatch.delenv("SKIN_LESION_CHECK", raising=False)


def test_setup_applies_parameters_to_the_arms_they_concern_and_prints_each_arm(synthetic_dir: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    config = setup("03_custom_cnn", "cpu", data_dir=str(synthetic_dir), seed=3, reference_epochs=2, epochs=7)
    printed = capsys.readouterr().out
    reference, improved = config.arm("reference"), config.arm("improved")
    assert (reference.train.epochs, reference.train.batch_size, reference.image_size) == (2, 16, 128)
    assert (improved.train.epochs, improved.train.batch_size, improved.train.seed) == (7, 64, 3)
    assert config.arm("reference_no_dropout").train.epochs == 5  # its own setting, untouched by reference_epochs and epochs
    assert "reference: reference_cnn | 128px | epochs 2 | batch 16" in printed
    assert "improved: improved_cnn | 64px | epochs 7 | batch 64" in printed
    assert "batch 64 |" not in printed.split("reference:")[1].split("\n")[0]  # the reference arm's own batch, not 64
    assert printed.count("preset cpu") == 1


def test_config_to_dict_holds_the_resolved_recipe_and_is_json(synthetic_dir: Path) -> None:
    config = setup("05_efficientnet_binary", "smoke", data_dir=str(synthetic_dir), show=False,
                   record={"melanoma_dir": None}, ham_epochs=3)
    saved = json.loads(json.dumps(config.to_dict()))
    assert saved["notebook"] == "05_efficientnet_binary" and saved["parameters"] == {"melanoma_dir": None}
    assert saved["recipe"]["arms"]["ham"]["train"]["epochs"] == 3
    assert saved["recipe"]["arms"]["reference"]["train"]["optimizer"] == "adadelta"
    assert "started" not in saved
    assert saved["image_size"] == config.arm("ours").image_size  # the recipe's size, not the preset's


def test_setup_without_a_recipe_records_parameters_and_rejects_recipe_overrides(synthetic_dir: Path) -> None:
    config = setup("01_eda", "cpu", data_dir=str(synthetic_dir), show=False, record={"stats_per_class": 300})
    assert config.recipe is None and config.settings == {} and "stats_per_class = 300" in config.banner()
    assert "image size 64px | epochs 8 | batch 64" in config.banner()
    with pytest.raises(ValueError, match="01_eda has no recipe, so no parameter epochs"):
        setup("01_eda", "cpu", data_dir=str(synthetic_dir), show=False, epochs=3)
    with pytest.raises(ValueError, match="has no recipe, so no arm 'x'"):
        config.arm("x")


def test_unknown_or_bad_parameters_name_themselves(synthetic_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown parameter.*bogus"):
        setup("03_custom_cnn", "cpu", data_dir=str(synthetic_dir), show=False, bogus=1)
    with pytest.raises(ValueError, match="03_custom_cnn parameter epochs must be a whole number"):
        setup("03_custom_cnn", "cpu", data_dir=str(synthetic_dir), show=False, epochs=0)
    with pytest.raises(ValueError, match="no arm 'improvd'"):
        setup("03_custom_cnn", "cpu", data_dir=str(synthetic_dir), show=False).arm("improvd")


def test_a_grid_notebook_banner_lists_its_settings(synthetic_dir: Path) -> None:
    config = setup("06_scaling_study", "smoke", data_dir=str(synthetic_dir), show=False, resume=True)
    text = banner(config)
    assert "resume = True" in text and "models = ['improved_cnn', 'vit_tiny']" in text
    assert config.recipe.of_preset("full").settings["epochs"] == 30


def test_resolve_config_alone_still_gives_the_preset(synthetic_dir: Path) -> None:
    config = resolve_config("cpu", data_dir=str(synthetic_dir), seed=3)
    assert isinstance(config, Config) and (config.image_size, config.epochs, config.batch_size) == (64, 8, 64)
    assert config.recipe is None and config.notebook == ""
