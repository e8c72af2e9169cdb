"""Tools of the transfer-learning notebook: calibrated evaluation, case picking, Grad-CAM of a classifier, masks, published tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.data.dataset import load_split_data
from helpers.data.images import load_resized_mask
from helpers.data.source import DERMAMNIST_ENV, find_dermamnist_csv
from helpers.core.errors import DataError
from helpers.evaluation.splits import evaluate_split, evaluation_of, pick_cases, temperature_scaled
from helpers.evaluation.gradcam import classifier_cams
from helpers.evaluation.metrics import expected_calibration_error
from helpers.models import build_classifier
from helpers.evaluation.published import DERMAMNIST_PUBLISHED, dermamnist_comparison


@pytest.fixture(scope="module")
def split_data(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return load_split_data(synthetic_dir, 32, cache_dir=tmp_path_factory.mktemp("cache"), progress=False, device="cpu")


def test_evaluation_of_given_probabilities_matches_evaluate_split(split_data) -> None:
    torch.manual_seed(0)
    model = build_classifier("improved_cnn", split_data.classes, 32)
    direct = evaluate_split(model, split_data, "test", n_boot=20)
    rebuilt = evaluation_of(split_data, direct.probs, "test", n_boot=20)
    assert "balanced_decision" in direct.summary  # evaluate_split also decides for balanced accuracy
    assert rebuilt.summary == {k: v for k, v in direct.summary.items() if k != "balanced_decision"}
    assert len(rebuilt.groups) == len(split_data.test)


def test_temperature_scaling_keeps_predictions_and_lowers_calibration_error_of_an_overconfident_model(split_data) -> None:
    torch.manual_seed(0)
    model = build_classifier("improved_cnn", split_data.classes, 32)
    with torch.no_grad():  # an untrained net with huge logits: confidently wrong
        model.net.classifier[-1].weight.mul_(200)
    before = evaluate_split(model, split_data, "val", n_boot=10).probs
    temperature, calibrated = temperature_scaled(model, split_data, "val")
    y = split_data.val.labels.numpy()
    assert temperature > 1
    assert np.array_equal(calibrated.argmax(1), before.argmax(1))
    assert expected_calibration_error(y, calibrated) < expected_calibration_error(y, before)


def test_pick_cases_gives_right_and_wrong_cases_per_class() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 0, 1, 1, 2])
    cases = pick_cases(y_true, y_pred, ["a", "b", "c"], per_class=1, seed=0)
    assert list(zip(cases["true"], cases["right"])) == [("a", True), ("a", False), ("b", True), ("c", True)]
    for row in cases.itertuples():
        assert y_true[row.index] == ["a", "b", "c"].index(row.true)
        assert (y_pred[row.index] == y_true[row.index]) == row.right


def test_classifier_cams_are_maps_in_unit_range_at_input_size(split_data) -> None:
    model = build_classifier("resnet18", split_data.classes, 32)
    images = split_data.test.images[:3]
    cams = classifier_cams(model, images)
    assert cams.shape == (3, 32, 32)
    assert cams.min() >= 0 and cams.max() <= 1
    assert np.array_equal(cams, classifier_cams(model, images.numpy()))


def test_classifier_cams_in_batches_match_one_pass_and_keep_per_image_classes(split_data) -> None:
    model = build_classifier("resnet18", split_data.classes, 32)
    images, classes = split_data.test.images[:5], [0, 1, 2, 1, 0]
    whole = classifier_cams(model, images, class_index=classes, batch_size=len(images))
    batched = classifier_cams(model, images, class_index=classes, batch_size=2)
    assert batched.shape == (5, 32, 32)
    np.testing.assert_allclose(batched, whole, atol=1e-5)
    np.testing.assert_allclose(classifier_cams(model, images[3:4], class_index=1), whole[3:4], atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        classifier_cams(model, images, batch_size=0)


def test_load_resized_mask_follows_the_center_crop_of_its_image(tmp_path: Path) -> None:
    mask = np.zeros((60, 80), dtype=np.uint8)
    mask[:, :40] = 255  # left half is lesion
    Image.fromarray(mask).save(tmp_path / "m.png")
    resized = load_resized_mask(tmp_path / "m.png", 30)
    assert resized.shape == (30, 30) and resized.dtype == bool
    assert resized[:, :14].all() and not resized[:, 16:].any()  # the crop keeps the middle 60 of 80 columns
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png"):
        load_resized_mask(tmp_path / "bad.png", 30)


def test_find_dermamnist_csv_prefers_parameter_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = tmp_path / "split.csv"
    csv.write_text("image_id,dermamnist_split\n")
    monkeypatch.setenv(DERMAMNIST_ENV, str(csv))
    assert find_dermamnist_csv() == csv
    assert find_dermamnist_csv(csv) == csv
    with pytest.raises(DataError, match="dermamnist_csv"):
        find_dermamnist_csv(tmp_path / "missing.csv")
    monkeypatch.setenv(DERMAMNIST_ENV, str(tmp_path / "gone.csv"))
    with pytest.raises(DataError, match=DERMAMNIST_ENV):
        find_dermamnist_csv()


def test_dermamnist_comparison_puts_ours_beside_every_published_row() -> None:
    ours = {"resnet18 scratch (28 px)": {"input_px": 28, "accuracy": 0.7, "macro_auc": 0.9, "balanced_accuracy": 0.5}}
    table = dermamnist_comparison(ours)
    assert len(table) == len(DERMAMNIST_PUBLISHED) + 1
    mine = table[table["source"] == "this course"].iloc[0]
    assert (mine["accuracy"], mine["auc"], mine["input_px"]) == (0.7, 0.9, 28)
    assert table["input_px"].is_monotonic_increasing
    assert isinstance(table, pd.DataFrame)


def test_freezing_a_classifier_leaves_only_its_head_trainable() -> None:
    from helpers.models import count_parameters, head_parameters, set_backbone_trainable

    model = build_classifier("resnet18", list("abc"), 32)
    set_backbone_trainable(model, False)
    assert count_parameters(model, trainable_only=True) == sum(p.numel() for p in head_parameters(model)) == 512 * 3 + 3
    set_backbone_trainable(model, True)
    assert count_parameters(model, trainable_only=True) == count_parameters(model)
