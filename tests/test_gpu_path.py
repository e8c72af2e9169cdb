"""The gpu and full presets' code paths on any machine: every model they train takes a step at its input size,
and a check run caps data and epochs without touching the models, sizes, batches or schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.course.config import banner, resolve_config
from helpers.course.recipes import CHECK_ENV, CHECK_MAX_IMAGES
from helpers.data.tensors import ImageData
from helpers.training.inference import evaluate
from helpers.models import build_classifier
from helpers.course.recipes import CHECK_EPOCHS, RECIPES, preset_models, recipe
from helpers.course.scaling import build_grid
from helpers.training.loop import TrainConfig, fit

CLASSES = ["a", "b", "c"]
GPU_PRESETS = ("gpu", "full")
GPU_MODELS = sorted(set(preset_models("gpu")) | set(preset_models("full")))


def tiny_data(size: int, n: int, seed: int) -> ImageData:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    return ImageData.from_numpy(images, np.arange(n) % len(CLASSES))


@pytest.mark.parametrize(("name", "size"), GPU_MODELS, ids=[f"{m}@{s}" for m, s in GPU_MODELS])
def test_every_gpu_preset_model_trains_one_step_and_evaluates_one_batch(name: str, size: int) -> None:
    torch.manual_seed(0)
    model = build_classifier(name, CLASSES, size)
    before = {k: v.clone() for k, v in model.net.state_dict().items() if v.is_floating_point()}
    config = TrainConfig(epochs=1, batch_size=2, max_steps_per_epoch=1, eval_batch_size=2, progress=False)
    result = fit(model, tiny_data(size, 2, 0), tiny_data(size, 2, 1), config)
    assert len(result.history) == 1 and result.history["train_images"].iloc[0] == 2
    assert math.isfinite(result.history["train_loss"].iloc[0])
    changed = [k for k, v in model.net.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert changed, f"{name}: one optimiser step changed no weight"
    scores = evaluate(model, tiny_data(size, 2, 2), batch_size=2)
    assert scores["probs"].shape == (2, len(CLASSES)) and np.isfinite(scores["probs"]).all()


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_gpu_preset_models_cover_every_notebook(preset: str) -> None:
    names = {name for name, _ in preset_models(preset)}
    grid = RECIPES["06_scaling_study"][preset]
    assert set(grid["models"]) | set(grid["pretrained_models"]) <= names
    assert {"reference_cnn", "improved_cnn", "resnet18", "efficientnet_b0", "efficientnet_lite0"} <= names
    assert ("resnet18", 128) in preset_models(preset)
    assert (("vit_b_16", 224) in preset_models(preset)) == (preset == "full")


@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_check_mode_caps_data_and_epochs_but_keeps_models_sizes_and_batches(monkeypatch: pytest.MonkeyPatch,
                                                                            synthetic_dir, preset: str) -> None:
    monkeypatch.setenv(CHECK_ENV, "1")
    monkeypatch.delenv("SKIN_LESION_PRESET", raising=False)
    config = resolve_config(preset, data_dir=synthetic_dir)
    assert config.preset == preset and config.max_images == CHECK_MAX_IMAGES
    assert "CHECK RUN" in banner(config)
    for notebook, presets in RECIPES.items():
        full, checked = presets[preset], recipe(notebook, preset)
        for key, value in full.items():
            if key.endswith("epochs"):
                assert checked[key] == min(value, CHECK_EPOCHS), (notebook, key)
            elif notebook != "06_scaling_study" or key not in ("fractions", "seeds", "seeds_up_to",
                                                               "pretrained_fractions", "min_images", "n_boot", "resume"):
                assert checked[key] == value, (notebook, key)


@pytest.mark.parametrize(("preset", "runs"), [("gpu", 45), ("full", 172)])
def test_check_mode_runs_each_distinct_grid_configuration_once(monkeypatch: pytest.MonkeyPatch, preset: str,
                                                               runs: int) -> None:
    monkeypatch.setenv(CHECK_ENV, "1")
    full = build_grid(RECIPES["06_scaling_study"][preset], can_pretrain=lambda model: True)
    checked = build_grid(recipe("06_scaling_study", preset), can_pretrain=lambda model: True)
    distinct = {(r.model, r.image_size, r.pretrained) for r in full}
    assert len(full) == runs and len(checked) == len(distinct)
    assert {(r.model, r.image_size, r.pretrained) for r in checked} == distinct


def test_without_check_mode_recipes_and_data_are_untouched(monkeypatch: pytest.MonkeyPatch, synthetic_dir) -> None:
    monkeypatch.delenv(CHECK_ENV, raising=False)
    monkeypatch.delenv("SKIN_LESION_PRESET", raising=False)
    assert recipe("06_scaling_study", "gpu") == RECIPES["06_scaling_study"]["gpu"]
    assert resolve_config("gpu", data_dir=synthetic_dir).max_images is None
