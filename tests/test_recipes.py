"""Every notebook's recipes as typed arms: valid, the same names in every preset, found in one call, unchanged."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from helpers.course.recipes import (CHECK_ENV, CHECK_EPOCHS, NOTEBOOKS, RECIPES, Arm, find_arm, list_arms,
                             preset_models, recipe, resolve_recipe)
from helpers.course.recipes.scaling_study import FIXED_RECIPE
from helpers.training.loop import TrainConfig

PRESETS = ("smoke", "cpu", "gpu", "full")
EXPECTED_FIXED_DIGEST = "a26b753a7c67"  # FIXED_RECIPE as it was in helpers.scaling before it moved here


@pytest.fixture(autouse=True)
def _no_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHECK_ENV, raising=False)


@pytest.mark.parametrize("notebook", list(NOTEBOOKS))
def test_every_preset_has_the_same_settings_and_arm_names_and_valid_arms(notebook: str) -> None:
    resolved = {preset: resolve_recipe(notebook, preset) for preset in PRESETS}
    assert len({tuple(r.arms) for r in resolved.values()}) == 1, {p: list(r.arms) for p, r in resolved.items()}
    optional = {"image_sizes"}  # 06: per-model input sizes, only where a preset has such models
    assert len({tuple(sorted(set(r.settings) - optional)) for r in resolved.values()}) == 1
    for r in resolved.values():
        for arm in r.arms.values():
            assert isinstance(arm, Arm) and isinstance(arm.train, TrainConfig)
            TrainConfig(**{**dataclasses.asdict(arm.train), "augment": arm.train.augment})  # validates again
            json.dumps(arm.to_dict())


def test_the_notebooks_arms_are_named_as_the_notebooks_ask_for_them() -> None:
    names = {notebook: list(resolve_recipe(notebook, "cpu").arms) for notebook in NOTEBOOKS}
    assert names["03_custom_cnn"] == ["reference", "reference_no_dropout", "improved"]
    assert names["04_resnet_transfer"] == ["scratch", "plain_loss", "probe", "finetune", "dermamnist_scratch",
                                           "dermamnist_finetune"]
    assert names["05_efficientnet_binary"] == ["reference", "ours", "ham"]
    assert names["02_preprocessing"] == ["leakage"] and names["06_scaling_study"] == []


def test_overrides_and_seed_reach_the_arms_built_from_them() -> None:
    r = resolve_recipe("04_resnet_transfer", "cpu", seed=4, depth=34, probe_image_size=160)
    assert r.arm("scratch").model == "resnet34" and r.arm("probe").image_size == 160
    assert r.arm("probe").frozen_backbone and "logistic regression on cached features" in r.arm("probe").describe()
    assert r.arm("finetune").image_size > r.arm("scratch").image_size  # the pretrained arm gets the larger input
    assert r.arm("finetune").train.backbone_lr == 1e-3 and r.arm("plain_loss").train.imbalance == "none"
    assert {arm.train.seed for arm in r.arms.values()} == {4}
    assert r.arm("dermamnist_scratch").sizes == (28, 64)
    assert r.arm("finetune", model="efficientnet_lite0", image_size=28).model == "efficientnet_lite0"


def test_a_check_run_caps_every_arm_and_keeps_models_sizes_and_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    full = resolve_recipe("03_custom_cnn", "gpu")
    monkeypatch.setenv(CHECK_ENV, "1")
    checked = resolve_recipe("03_custom_cnn", "gpu")
    for name, arm in full.arms.items():
        assert checked.arm(name).train.epochs == min(arm.train.epochs, CHECK_EPOCHS)
        assert (checked.arm(name).model, checked.arm(name).image_size, checked.arm(name).train.batch_size) == \
               (arm.model, arm.image_size, arm.train.batch_size)
    assert checked.of_preset("gpu").arm("improved").train.epochs == 40  # another preset's own, uncapped


def test_find_arm_is_one_call_for_the_command_line() -> None:
    arm = find_arm("03_custom_cnn:improved", "gpu")
    assert (arm.model, arm.image_size, arm.train.epochs, arm.train.augment.hflip) == ("improved_cnn", 128, 40, True)
    assert "05_efficientnet_binary:ham" in list_arms("cpu") and len(list_arms("cpu")) == 13
    with pytest.raises(ValueError, match="NOTEBOOK:NAME"):
        find_arm("03_custom_cnn")
    with pytest.raises(ValueError, match="no recipe for notebook '07_x'"):
        find_arm("07_x:a")


def test_arm_records_reject_bad_values() -> None:
    train = TrainConfig()
    with pytest.raises(ValueError, match="arm a: image_size must be a whole number"):
        Arm("a", "resnet18", 0, train)
    with pytest.raises(ValueError, match="train must be a TrainConfig"):
        Arm("a", "resnet18", 32, {"epochs": 1})
    with pytest.raises(ValueError, match="frozen backbone needs pretrained"):
        Arm("a", "resnet18", 32, train, frozen_backbone=True)


def test_preset_models_come_from_the_arms_with_their_fallbacks() -> None:
    pairs = preset_models("cpu")
    assert ("reference_cnn", 128) in pairs and ("improved_cnn", 64) in pairs
    assert ("efficientnet_lite0", 64) in pairs  # 04's DermaMNIST fine-tune falls back to Lite0 offline
    assert ("efficientnet_lite0", 28) not in pairs and ("efficientnet_lite0", 28) in preset_models("gpu")
    assert ("efficientnet_b0", 64) in pairs and ("mixer_small", 64) in pairs


def test_the_fixed_grid_recipe_hashes_as_before() -> None:
    # row ids of helpers.scaling hash FIXED_RECIPE: a change here changes every id (and retrains a resumed grid)
    digest = hashlib.sha256(json.dumps(FIXED_RECIPE, sort_keys=True).encode()).hexdigest()[:12]
    assert digest == EXPECTED_FIXED_DIGEST


def test_recipe_overrides_take_the_settings_names_and_refuse_others() -> None:
    assert recipe("03_custom_cnn", "cpu", reference_epochs=2)["reference_epochs"] == 2
    default = RECIPES["05_efficientnet_binary"]["cpu"]["reference_epochs"]
    assert recipe("05_efficientnet_binary", "cpu", reference_epochs=None)["reference_epochs"] == default
    with pytest.raises(ValueError, match="^03_custom_cnn parameter reference_image_size must be a whole number"):
        recipe("03_custom_cnn", "cpu", reference_image_size=0)
    with pytest.raises(ValueError, match=r"^unknown parameter\(s\) seed_epochs for 03_custom_cnn; known: .*reference_epochs"):
        recipe("03_custom_cnn", "cpu", seed_epochs=2)  # the settings' names before the reference_* rename


def test_an_arm_draws_the_same_initial_weights_whatever_was_built_before_it() -> None:
    import torch

    arms = resolve_recipe("03_custom_cnn", "smoke").arms
    classes = ["a", "b", "c"]
    first = arms["improved"].build(classes).state_dict()
    arms["reference"].build(classes)  # another arm built in between draws random numbers
    torch.rand(1000)
    again = arms["improved"].build(classes).state_dict()
    assert all(torch.equal(first[key], again[key]) for key in first)
    other_seed = dataclasses.replace(arms["improved"], train=dataclasses.replace(arms["improved"].train, seed=1))
    assert not all(torch.equal(first[key], value) for key, value in other_seed.build(classes).state_dict().items())
