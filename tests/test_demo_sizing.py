"""The synthetic demo's sizing: any preset but smoke on the built-in synthetic set runs every cell at a tiny size
(capped epochs, images and scaling grid) and says so; real data, the smoke preset and check runs are untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

import helpers.course.config
from helpers.course.config import banner, resolve_config, setup
from helpers.data.source import DataSource
from helpers.course.recipes import (CHECK, CHECK_ENV, CHECK_MAX_IMAGES, DEMO, DEMO_EPOCHS, DEMO_MAX_IMAGES, NOTEBOOKS, RECIPES,
                             capped_settings, check_settings, resolve_recipe, sizing_for)
from helpers.course.scaling import build_grid

GRID = "06_scaling_study"


@pytest.fixture(autouse=True)
def _no_preset_or_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKIN_LESION_PRESET", raising=False)
    monkeypatch.delenv(CHECK_ENV, raising=False)


@pytest.fixture
def no_real_data(monkeypatch: pytest.MonkeyPatch, synthetic_dir: Path) -> Path:
    """No real data configured: the data source is the built-in synthetic demo set (here the small session set)."""
    source = DataSource("synthetic", synthetic_dir, "built-in synthetic demo set (no real data configured)")
    monkeypatch.setattr(helpers.course.config, "resolve_data_source", lambda data_dir=None: source)
    return synthetic_dir


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
@pytest.mark.parametrize("notebook", list(NOTEBOOKS))
def test_the_synthetic_demo_caps_epochs_and_images_and_keeps_models_sizes_and_batches(
        no_real_data: Path, notebook: str, preset: str) -> None:
    config = setup(notebook, preset, show=False)
    full = resolve_recipe(notebook, preset, check=False)
    assert config.data_source == "synthetic" and config.recipe.sizing == "demo"
    assert config.max_images == DEMO_MAX_IMAGES
    for key, value in full.settings.items():
        if key.endswith("epochs"):
            assert config.settings[key] == min(value, DEMO_EPOCHS), key
        elif notebook != GRID:
            assert config.settings[key] == value, key
    for name, arm in full.arms.items():
        demo = config.arm(name)
        assert demo.train.epochs == min(arm.train.epochs, DEMO_EPOCHS) <= DEMO_EPOCHS
        assert (demo.model, demo.image_size, demo.sizes, demo.train.batch_size, demo.train.schedule) == \
               (arm.model, arm.image_size, arm.sizes, arm.train.batch_size, arm.train.schedule)
    assert config.recipe.of_preset(preset).settings == full.settings  # another preset's own settings, uncapped


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_the_demo_grid_runs_each_configuration_once_at_the_largest_fractions(no_real_data: Path, preset: str) -> None:
    settings = setup(GRID, preset, show=False).settings
    full = build_grid(RECIPES[GRID][preset], can_pretrain=lambda model: True)
    demo = build_grid(settings, can_pretrain=lambda model: True)
    assert settings["fractions"] == sorted(RECIPES[GRID][preset]["fractions"])[-DEMO.grid_fractions:]
    assert settings["min_images"] == 0 and settings["n_boot"] == DEMO.n_boot and settings["resume"] is False
    assert {(r.model, r.image_size, r.pretrained) for r in demo} == {(r.model, r.image_size, r.pretrained) for r in full}
    keys = [(r.model, r.pretrained, r.fraction) for r in demo]
    assert len(keys) == len(set(keys)) and {r.seed for r in demo} == {RECIPES[GRID][preset]["seeds"][0]}
    scratch = RECIPES[GRID][preset]["models"]
    pretrained = RECIPES[GRID][preset]["pretrained_models"]
    assert len(demo) == (len(scratch) * DEMO.grid_fractions + len(pretrained)
                         + len(set(pretrained) - set(scratch))) < len(full)  # pretrained arms beside a scratch one


def test_the_demo_banner_says_loudly_that_its_numbers_mean_nothing(no_real_data: Path) -> None:
    text = banner(setup("03_custom_cnn", "cpu", show=False))
    assert "SYNTHETIC DEMO DATA" in text and "DEMO SIZING of the cpu preset" in text
    assert "sized to show that every cell works" in text and "ITS NUMBERS MEAN NOTHING" in text
    epochs = f"{DEMO_EPOCHS} epoch" + ("s" if DEMO_EPOCHS != 1 else "")
    assert f"At most {epochs} per training, at most {DEMO_MAX_IMAGES} images" in text
    assert "CHECK RUN" not in text
    assert "DEMO SIZING of the gpu preset" in banner(resolve_config("gpu"))  # a notebook without a recipe too


def test_the_demo_is_estimated_from_the_committed_cpu_calibration_without_calibrating_this_machine(
        no_real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import helpers.course.cost.series

    monkeypatch.setattr(helpers.course.cost.series, "calibration_here", lambda *args, **kwargs: pytest.fail("calibrated"))
    text = setup("04_resnet_transfer", "cpu", show=False).estimate()
    assert text.startswith("estimated time on 2-core CPU") and "stands in for this machine's" in text
    assert "WARNING" not in text


def test_real_data_trains_the_preset_as_it_is(synthetic_dir: Path) -> None:
    # a HAM10000-layout folder given as data_dir is real data to the notebooks, whatever drew its images
    for notebook in NOTEBOOKS:
        config = setup(notebook, "cpu", data_dir=str(synthetic_dir), show=False)
        assert config.data_source == "ham10000" and config.recipe.sizing is None
        assert config.settings == RECIPES[notebook]["cpu"]
        assert config.recipe == resolve_recipe(notebook, "cpu", check=False)
    config = resolve_config("cpu", data_dir=str(synthetic_dir))
    assert config.max_images is None and "DEMO SIZING" not in banner(config)


def test_the_smoke_preset_on_the_synthetic_set_is_untouched(no_real_data: Path) -> None:
    for notebook in NOTEBOOKS:
        config = setup(notebook, "smoke", show=False)
        assert config.recipe.sizing is None and config.settings == RECIPES[notebook]["smoke"]
    config = resolve_config("smoke")
    assert config.max_images == 210 and "DEMO SIZING" not in banner(config)


def test_a_check_run_on_the_synthetic_set_is_a_check_run(no_real_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHECK_ENV, "1")
    config = setup("03_custom_cnn", "cpu", show=False)
    assert config.recipe.sizing == "check" and config.max_images == CHECK_MAX_IMAGES
    assert "CHECK RUN" in banner(config) and "DEMO SIZING" not in banner(config)


def test_one_function_caps_both_sizings() -> None:
    assert sizing_for("cpu", "synthetic") is DEMO and sizing_for("gpu", "synthetic") is DEMO
    assert sizing_for("smoke", "synthetic") is None and sizing_for("cpu", "ham10000") is None
    assert sizing_for("cpu", "ham10000", check=True) is CHECK and sizing_for("cpu", "synthetic", check=False) is DEMO
    assert sizing_for("cpu", check=False) is None and resolve_recipe(GRID, "cpu", check=False).settings == RECIPES[GRID]["cpu"]
    for notebook, presets in RECIPES.items():
        assert check_settings(notebook, presets["gpu"]) == capped_settings(notebook, presets["gpu"], CHECK)
    assert check_settings(GRID, RECIPES[GRID]["gpu"])["fractions"] == [1.0]
