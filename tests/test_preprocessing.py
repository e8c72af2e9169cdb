"""Notebook 02's figures: resize policies, augmentation previews, split shares and accuracy by kind of test image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from helpers import plots
from helpers.training.augment import AugmentConfig, preview
from helpers.data import lesion_split, load_ham10000
from helpers.data.images import RESIZE_POLICIES, load_resized
from helpers.course.recipes import recipe


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def test_resize_policies_shows_the_stored_image_and_each_policy(synthetic_dir: Path) -> None:
    path = load_ham10000(synthetic_dir)["path"].iloc[0]
    fig = plots.resize_policies(path, size=48)
    stored, *resized = fig.axes
    assert len(resized) == len(RESIZE_POLICIES)
    assert stored.images[0].get_array().shape[:2] == (60, 80)  # the synthetic set is 80x60 (4:3)
    assert len(stored.patches) == 1  # the square center_crop keeps
    for ax, policy in zip(resized, RESIZE_POLICIES):
        assert policy in ax.get_title()
        np.testing.assert_array_equal(ax.images[0].get_array(), load_resized(path, 48, policy))


def test_augmentation_grid_has_a_row_per_setting_and_the_original_first() -> None:
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8))
    previews = {name: preview(image, AugmentConfig().only(name), n=3) for name in ("hflip", "brightness")}
    previews["all together"] = preview(image, AugmentConfig(), n=3).numpy()  # tensors and arrays both work
    fig = plots.augmentation_grid(previews, original=image)
    axes = np.array(fig.axes).reshape(3, 4)
    assert [row[0].get_ylabel() for row in axes] == ["hflip", "brightness", "all together"]
    np.testing.assert_array_equal(axes[1, 0].images[0].get_array(), image.numpy())
    np.testing.assert_array_equal(axes[2, 3].images[0].get_array(), previews["all together"][2])
    assert len(plots.augmentation_grid(previews).axes) == 3 * 3


def test_split_shares_bars_match_the_split(synthetic_dir: Path) -> None:
    index = load_ham10000(synthetic_dir)
    split = lesion_split(index, seed=0)
    left, right = plots.split_shares(index, split).axes
    classes = sorted(index["dx"].astype(str).unique())
    train_share = (index.loc[split == "train", "dx"].astype(str).value_counts(normalize=True)).reindex(classes).to_numpy()
    heights = np.array([bar.get_height() for bar in left.containers[0]])
    np.testing.assert_allclose(heights, train_share)
    stacked = sum(np.array([bar.get_width() for bar in container]) for container in right.containers)
    np.testing.assert_allclose(stacked, 1.0)  # each class's images all go somewhere


def test_grouped_accuracy_marks_missing_bars_and_labels_n() -> None:
    table = pd.DataFrame({
        "test images": ["seen", "unseen", "unseen"],
        "model": ["leaky", "leaky", "fair"],
        "accuracy": [0.9, 0.6, 0.7],
        "n": [10, 20, 30],
    })
    ax = plots.grouped_accuracy(table)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["seen", "unseen"]
    texts = [t.get_text() for t in ax.texts]
    assert "0.90 (n=10)" in texts and "0.70 (n=30)" in texts and "none" in texts
    assert [len(c) for c in ax.containers] == [2, 1]


def test_preprocessing_recipe_trains_one_model_in_every_preset() -> None:
    for preset in ("smoke", "cpu", "gpu", "full"):
        settings = recipe("02_preprocessing", preset)
        assert set(settings) == {"model", "image_size", "epochs", "batch_size", "lr", "augment"}
    assert recipe("02_preprocessing", "smoke")["image_size"] == 32
    assert recipe("02_preprocessing", "cpu", epochs=3, model=None)["epochs"] == 3
