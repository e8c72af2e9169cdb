"""Notebook 04's Grad-CAM checks as library calls: the feature map's size, and Grad-CAM mass inside the lesion masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.data.images import load_resized_mask
from helpers.evaluation import gradcam
from helpers.evaluation.gradcam import MaskAgreement, cam_mass_inside, classifier_cams, feature_map_size, mask_agreement
from helpers.models import build_classifier, gradcam_layer

SIZE = 8
TOP_LEFT = np.zeros((SIZE, SIZE), dtype=bool)
TOP_LEFT[:4, :4] = True  # a quarter of the image
LEFT_HALF = np.zeros((SIZE, SIZE), dtype=bool)
LEFT_HALF[:, :4] = True


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_classifier("resnet18", ["a", "b"], 64)


def test_feature_map_size_of_resnet18_at_64_px_is_2x2_for_an_image_or_a_batch(resnet) -> None:
    images = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    assert feature_map_size(resnet, images[:1]) == (2, 2)
    assert feature_map_size(resnet, images[0].numpy()) == (2, 2)  # one HWC array
    assert feature_map_size(build_classifier("resnet18", ["a", "b"], 96), images[:1]) == (2, 2)  # 64 px passed
    assert feature_map_size(resnet, torch.zeros(1, 128, 128, 3, dtype=torch.uint8)) == (4, 4)


def test_feature_map_size_restores_each_module_mode_and_leaves_no_hook_even_on_error(resnet) -> None:
    resnet.train()
    resnet.net.layer1.eval()  # a mixed state must come back as it was, module by module
    before = {name: module.training for name, module in resnet.named_modules()}
    layer = gradcam_layer(resnet)
    assert feature_map_size(resnet, torch.zeros(1, 64, 64, 3, dtype=torch.uint8)) == (2, 2)
    assert {name: module.training for name, module in resnet.named_modules()} == before
    assert not layer._forward_hooks
    with pytest.raises(RuntimeError):  # two channels: the first convolution fails
        feature_map_size(resnet, torch.zeros(1, 64, 64, 2, dtype=torch.uint8))
    assert {name: module.training for name, module in resnet.named_modules()} == before
    assert not layer._forward_hooks
    resnet.eval()


def _write_mask(path: Path, mask: np.ndarray) -> Path:
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)
    return path


@pytest.fixture
def case(tmp_path: Path):
    """Four 8 px images (image i filled with the value i), the first three with a mask, the last without."""
    images = np.stack([np.full((SIZE, SIZE, 3), i, dtype=np.uint8) for i in range(4)])
    rows = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "dx": pd.Categorical(["nv", "nv", "mel", "bcc"])})
    truth = {"a": TOP_LEFT, "b": LEFT_HALF, "c": TOP_LEFT}
    masks = {image_id: _write_mask(tmp_path / f"{image_id}.png", mask) for image_id, mask in truth.items()}
    masks["z"] = _write_mask(tmp_path / "z.png", TOP_LEFT)  # a mask of an image not in the test rows
    return images, rows, masks, truth


def _fake_cams(monkeypatch: pytest.MonkeyPatch, cams_by_image: dict[int, np.ndarray]) -> list[list[int]]:
    """classifier_cams replaced: the map of image i is cams_by_image[i]; returns the images it was asked about."""
    seen: list[list[int]] = []

    def fake(model, images, class_index=None, batch_size=64):
        ids = [int(image[0, 0, 0]) for image in np.asarray(images)]
        seen.append(ids)
        return np.stack([cams_by_image[i].astype(np.float32) for i in ids])

    monkeypatch.setattr(gradcam, "classifier_cams", fake)
    return seen


def test_maps_inside_the_masks_concentrate_on_the_lesion(case, monkeypatch: pytest.MonkeyPatch) -> None:
    images, rows, masks, truth = case
    seen = _fake_cams(monkeypatch, {0: TOP_LEFT, 1: LEFT_HALF, 2: TOP_LEFT})  # all the mass inside each mask
    found = mask_agreement(torch.nn.Identity(), images, rows, masks, SIZE, "center_crop")
    assert isinstance(found, MaskAgreement)
    assert seen == [[0, 1, 2]]  # only the images with a mask, in order
    assert list(found.table.index) == ["mel", "nv", "all"]
    assert list(found.table.columns) == ["Grad-CAM mass inside lesion", "lesion share of image"]
    np.testing.assert_allclose(found.table["Grad-CAM mass inside lesion"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(found.table["lesion share of image"], [0.25, 0.375, 1 / 3])
    assert found.ratio.name == "mass inside / lesion share (1.0 = uniform map)"
    np.testing.assert_allclose(found.ratio, [4.0, 1 / 0.375, 3.0])
    assert found.above == 1.0 and found.n_scored == 3
    text = found.verdict((7, 7))
    assert text.startswith("Overall the Grad-CAM map concentrates on the lesion: it puts 3.00 times")
    assert "more than a uniform share in 100% of the 3 masked test images." in text and "coarse" not in text


def test_a_uniform_map_is_no_better_than_uniform(case, monkeypatch: pytest.MonkeyPatch) -> None:
    images, rows, masks, _ = case
    _fake_cams(monkeypatch, {i: np.ones((SIZE, SIZE)) for i in range(3)})
    found = mask_agreement(torch.nn.Identity(), images, rows, masks, SIZE, "center_crop")
    np.testing.assert_allclose(found.ratio, [1.0, 1.0, 1.0])
    assert found.above == 0.0 and found.n_scored == 3  # equal, never more than the lesion's share
    text = found.verdict((2, 2))
    assert "does not concentrate on the lesion (no better than a uniform map): it puts 1.00 times" in text
    assert text.endswith(" At 8 px, though, the feature map is only 2×2 cells, too coarse to localise a lesion: "
                         "this comparison only means something at larger inputs.")


def test_maps_outside_the_masks_and_all_zero_maps_are_scored_nan_aware(case, monkeypatch: pytest.MonkeyPatch) -> None:
    images, rows, masks, _ = case
    _fake_cams(monkeypatch, {0: ~TOP_LEFT, 1: np.zeros((SIZE, SIZE)), 2: np.ones((SIZE, SIZE))})
    found = mask_agreement(torch.nn.Identity(), images, rows, masks, SIZE, "center_crop")
    assert found.n_scored == 2  # image b's map is all zero: no share of nothing
    table = found.table
    assert table.loc["all", "Grad-CAM mass inside lesion"] == pytest.approx((0.0 + 0.25) / 2)  # nanmean
    assert table.loc["all", "lesion share of image"] == pytest.approx(1 / 3)  # every masked image
    assert table.loc["nv", "Grad-CAM mass inside lesion"] == 0.0 and table.loc["mel", "Grad-CAM mass inside lesion"] == 0.25
    assert found.ratio["all"] == pytest.approx(0.125 * 3) and found.above == 0.0
    assert "puts less on the lesion than a uniform map would: it puts 0.38 times" in found.verdict((5, 5))
    assert "of the 2 masked test images" in found.verdict((5, 5))


def test_no_mask_for_any_test_image_gives_none(case) -> None:
    images, rows, masks, _ = case
    assert mask_agreement(torch.nn.Identity(), images, rows, {}, SIZE, "center_crop") is None
    assert mask_agreement(torch.nn.Identity(), images, rows, {"z": masks["z"]}, SIZE, "center_crop") is None
    with pytest.raises(ValueError, match="match one to one"):
        mask_agreement(torch.nn.Identity(), images[:3], rows, masks, SIZE, "center_crop")
    with pytest.raises(ValueError, match="must be 16x16"):
        mask_agreement(torch.nn.Identity(), images, rows, masks, 16, "center_crop")


def test_on_a_real_model_it_matches_the_notebooks_own_computation(resnet, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    rows = pd.DataFrame({"image_id": ["p", "q", "r"], "dx": ["mel", "nv", "nv"]})
    yy, xx = np.mgrid[:64, :64]
    masks = {image_id: _write_mask(tmp_path / f"{image_id}.png", (yy - 32) ** 2 + (xx - cx) ** 2 < 15 ** 2)
             for image_id, cx in (("p", 20), ("r", 40))}
    found = mask_agreement(resnet, images, rows, masks)  # size from the images, policy from the model
    # What notebook 04 computed in its cells (with_mask: images p and r)
    stack = np.stack([load_resized_mask(masks[i], 64, resnet.resize_policy) for i in ("p", "r")])
    mass = cam_mass_inside(classifier_cams(resnet, images[[0, 2]]), stack)
    area = stack.mean(axis=(1, 2))
    expected = pd.DataFrame({"dx": ["mel", "nv"], "Grad-CAM mass inside lesion": mass,
                             "lesion share of image": area}).groupby("dx").mean().round(3)
    expected.loc["all"] = [float(np.nanmean(mass)), float(area.mean())]
    pd.testing.assert_frame_equal(found.table, expected)
    ratio = expected["Grad-CAM mass inside lesion"] / expected["lesion share of image"]
    pd.testing.assert_series_equal(found.ratio, ratio, check_names=False)
    scored = ~np.isnan(mass)
    assert found.above == float(np.mean(mass[scored] > area[scored])) and found.n_scored == int(scored.sum())
