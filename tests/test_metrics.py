"""Evaluation metrics agree with scikit-learn; calibration, temperature scaling, lesion bootstrap and Grad-CAM behave."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from helpers.data.labels import BINARY_CLASSES, DX_CLASSES
from helpers.evaluation.gradcam import cam_mass_inside, grad_cam
from helpers.evaluation.metrics import (
    _weighted_metrics,
    apply_temperature,
    bootstrap_ci,
    classification_metrics,
    classification_report_table,
    expected_calibration_error,
    fit_temperature,
    metrics_summary,
    reliability_table,
    sensitivity_specificity,
    threshold_for_sensitivity,
)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fake_predictions(n: int, n_classes: int, seed: int = 0, signal: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities of a mediocre classifier."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), y] += signal
    return y, softmax(logits)


# --- point metrics --------------------------------------------------------------------------------------------


def test_multiclass_metrics_equal_sklearn() -> None:
    y, probs = fake_predictions(600, len(DX_CLASSES))
    pred = probs.argmax(axis=1)
    m = classification_metrics(y, probs, DX_CLASSES)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["macro_auc"] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    recall = skm.recall_score(y, pred, average=None)
    assert list(m["per_class_recall"]) == list(DX_CLASSES)
    assert list(m["per_class_recall"].values()) == pytest.approx(list(recall))
    assert m["n_test"] == 600 and "sensitivity" not in m


def test_macro_auc_leaves_out_absent_classes_and_is_nan_with_one_class() -> None:
    y, probs = fake_predictions(300, len(DX_CLASSES), seed=1)
    keep = y != 3
    m = classification_metrics(y[keep], probs[keep], DX_CLASSES)
    expected = np.mean([skm.roc_auc_score(y[keep] == c, probs[keep, c]) for c in (0, 1, 2, 4, 5, 6)])
    assert m["macro_auc"] == pytest.approx(expected)
    assert np.isnan(m["per_class_recall"]["df"])
    only_one = classification_metrics(np.zeros(5, int), probs[:5], DX_CLASSES)
    assert np.isnan(only_one["macro_auc"])


def test_binary_metrics_on_hand_made_example() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.1, 0.05])
    m = classification_metrics(y, np.stack([1 - p, p], axis=1), BINARY_CLASSES)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(5 / 6)
    # 24 positive/negative pairs, ranked wrongly: (0.6 < 0.7), (0.3 < 0.7), (0.3 < 0.4)
    assert m["auc"] == pytest.approx(21 / 24) == skm.roc_auc_score(y, p)
    assert m["per_class_recall"] == pytest.approx({"benign": 5 / 6, "malignant": 3 / 4})
    strict = classification_metrics(y, np.stack([1 - p, p], axis=1), BINARY_CLASSES, threshold=0.75)
    assert (strict["sensitivity"], strict["specificity"]) == pytest.approx((2 / 4, 1.0))
    assert sensitivity_specificity(y, p, 0.75) == pytest.approx((2 / 4, 1.0))


@pytest.mark.parametrize("target", [0.5, 0.7, 0.9, 1.0])
def test_threshold_for_sensitivity_is_the_highest_that_reaches_target(target: float) -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 400), 0, 1)
    threshold = threshold_for_sensitivity(y, p, target)
    sensitivity, specificity = sensitivity_specificity(y, p, threshold)
    assert sensitivity >= target
    higher = np.min(p[p > threshold], initial=np.inf)  # the next distinct score up
    assert sensitivity_specificity(y, p, higher)[0] < target


def test_classification_report_table_matches_sklearn() -> None:
    y, probs = fake_predictions(300, 3, seed=3)
    pred = probs.argmax(axis=1)
    table = classification_report_table(y, pred, ["a", "b", "c"])
    assert list(table.index) == ["a", "b", "c", "macro avg", "weighted avg"]
    assert list(table.columns) == ["precision", "recall", "f1-score", "support"]
    assert table.loc["b", "precision"] == pytest.approx(skm.precision_score(y, pred, average=None)[1])
    assert table.loc["macro avg", "f1-score"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert table.loc["weighted avg", "support"] == 300


# --- calibration ----------------------------------------------------------------------------------------------


def test_ece_is_zero_when_calibrated_and_large_when_overconfident() -> None:
    # confidence 0.8 with 8 of 10 right, confidence 0.6 with 3 of 5 right
    y = np.array([1] * 8 + [0] * 2 + [0] * 3 + [1] * 2)
    p_one = np.array([0.8] * 10 + [0.4] * 5)
    probs = np.stack([1 - p_one, p_one], axis=1)
    assert expected_calibration_error(y, probs, n_bins=10) == pytest.approx(0.0, abs=1e-12)
    overconfident = np.tile([0.01, 0.99], (20, 1))
    assert expected_calibration_error(np.array([0, 1] * 10), overconfident) == pytest.approx(0.49)
    table = reliability_table(y, probs, n_bins=10)
    assert list(table.columns[:1]) == ["bin"] and {"confidence", "accuracy", "count"} <= set(table.columns)
    assert table["count"].sum() == 15 and table.loc[table["count"] > 0, "bin"].tolist() == [5, 7]


def test_fit_temperature_recovers_known_temperature() -> None:
    rng = np.random.default_rng(4)
    true_logits = rng.normal(scale=2.0, size=(20_000, 7))
    y = (softmax(true_logits).cumsum(axis=1) < rng.uniform(size=(20_000, 1))).sum(axis=1)  # y ~ softmax(true_logits)
    logits = 2.5 * true_logits  # an overconfident model: the right temperature is 2.5
    temperature = fit_temperature(logits, y)
    assert temperature == pytest.approx(2.5, rel=0.1)
    assert fit_temperature(torch.from_numpy(logits), torch.from_numpy(y)) == pytest.approx(temperature)
    before, after = softmax(logits), apply_temperature(logits, temperature)
    assert after.sum(axis=1) == pytest.approx(np.ones(len(y)))
    assert skm.log_loss(y, after) < skm.log_loss(y, before)
    assert expected_calibration_error(y, after) < 0.5 * expected_calibration_error(y, before)


# --- bootstrap ------------------------------------------------------------------------------------------------


def test_vectorised_metrics_equal_sklearn_with_sample_weights() -> None:
    y, probs = fake_predictions(300, len(DX_CLASSES), seed=5)
    weights = np.random.default_rng(50).integers(0, 4, size=(3, 300)).astype(float)
    pred = probs.argmax(axis=1)
    names = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
    got = _weighted_metrics(y, probs, weights, names)
    for b, w in enumerate(weights):
        assert got["accuracy"][b] == pytest.approx(skm.accuracy_score(y, pred, sample_weight=w))
        assert got["balanced_accuracy"][b] == pytest.approx(skm.balanced_accuracy_score(y, pred, sample_weight=w))
        assert got["macro_f1"][b] == pytest.approx(skm.f1_score(y, pred, average="macro", sample_weight=w))
        assert got["macro_auc"][b] == pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr", sample_weight=w))


def test_vectorised_binary_metrics_equal_point_metrics_with_ties() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 200)
    p = np.round(np.clip(0.3 * y + rng.uniform(0, 0.7, 200), 0, 1), 1)  # many tied scores
    probs = np.stack([1 - p, p], axis=1)
    got = _weighted_metrics(y, probs, np.ones((1, 200)), ("auc", "sensitivity", "specificity"), threshold=0.4)
    point = classification_metrics(y, probs, BINARY_CLASSES, threshold=0.4)
    assert [got[k][0] for k in ("auc", "sensitivity", "specificity")] == pytest.approx(
        [point["auc"], point["sensitivity"], point["specificity"]])


def test_bootstrap_contains_estimate_and_narrows_with_more_data() -> None:
    widths = {}
    for n in (200, 2000):
        y, probs = fake_predictions(n, len(DX_CLASSES), seed=7)
        lesions = np.arange(n) // 2
        ci = bootstrap_ci(y, probs, lesions, n_boot=300)
        point = classification_metrics(y, probs, DX_CLASSES)
        for name, (low, high) in ci.items():
            assert low <= point[name] <= high, name
        widths[n] = {name: high - low for name, (low, high) in ci.items()}
    assert all(widths[2000][name] < 0.6 * widths[200][name] for name in widths[200])


def test_bootstrap_resamples_lesions_not_images() -> None:
    y, probs = fake_predictions(100, 3, seed=8)
    dup_y, dup_probs = np.repeat(y, 10), np.repeat(probs, 10, axis=0)  # each lesion: ten identical images
    lesions = np.repeat(np.arange(100), 10)
    by_lesion = bootstrap_ci(dup_y, dup_probs, lesions, n_boot=400)
    by_image = bootstrap_ci(dup_y, dup_probs, np.arange(1000), n_boot=400)
    for name in by_lesion:
        lesion_width = by_lesion[name][1] - by_lesion[name][0]
        assert lesion_width > 2 * (by_image[name][1] - by_image[name][0]), name
    # duplicates add no information: the lesion bootstrap equals the one of the 100 distinct images
    distinct = bootstrap_ci(y, probs, np.arange(100), n_boot=400)
    assert all(by_lesion[name] == pytest.approx(distinct[name]) for name in distinct)


def test_bootstrap_skips_undefined_resamples() -> None:
    """(Its speed is measured in benchmarks/bootstrap_ci.py, against a per-resample scikit-learn loop.)"""
    y, probs = fake_predictions(1500, len(DX_CLASSES), seed=9)
    y[y == 3] = 2
    y[:2] = 3  # class 3 lives in one lesion only: absent from about a third of the resamples
    lesions = np.arange(1500) // 2
    ci = bootstrap_ci(y, probs, lesions, metrics=("macro_auc", "recall_df"), classes=DX_CLASSES, n_boot=1000)
    assert all(np.isfinite(v) for interval in ci.values() for v in interval)
    assert ci["recall_df"][0] <= ci["recall_df"][1]
    with pytest.raises(ValueError, match="unknown metrics"):
        bootstrap_ci(y, probs, lesions, metrics=("sensitivity",), n_boot=10)


def test_metrics_summary_is_json_ready_with_contract_keys() -> None:
    y, probs = fake_predictions(200, len(DX_CLASSES), seed=10)
    y[y == 3] = 0  # an absent class gives a NaN recall, which must become null
    summary = metrics_summary(y, probs, DX_CLASSES, np.arange(200) // 3, n_boot=100)
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary
    assert {"accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "per_class_recall", "ci95", "n_test"} <= set(summary)
    assert summary["per_class_recall"]["df"] is None and summary["n_test"] == 200
    assert set(summary["ci95"]) == {"accuracy", "balanced_accuracy", "macro_f1", "macro_auc"}
    assert all(isinstance(v, list) and len(v) == 2 for v in summary["ci95"].values())

    p = np.clip(0.4 * (y % 2) + np.random.default_rng(10).uniform(0, 0.6, 200), 0, 1)
    binary = metrics_summary(y % 2, np.stack([1 - p, p], axis=1), BINARY_CLASSES, np.arange(200), n_boot=100)
    assert json.loads(json.dumps(binary, allow_nan=False)) == binary
    assert {"sensitivity", "specificity", "auc"} <= set(binary)
    assert {"auc", "sensitivity", "specificity"} <= set(binary["ci95"])
    assert binary["ci95"]["auc"][0] <= binary["auc"] <= binary["ci95"]["auc"][1]


# --- Grad-CAM -------------------------------------------------------------------------------------------------


class ColourNet(nn.Module):
    """A CNN whose channel 0 detects red and channel 1 green; class 0 is 'green', class 1 'red'."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(3, 2, 3, padding=1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.fill_(-0.1)
            conv.weight[0, 0, 1, 1], conv.weight[1, 1, 1, 1] = 1.0, 1.0
        self.features = nn.Sequential(conv, nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(4))  # 32x32 -> 8x8
        self.head = nn.Sequential(nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
        with torch.no_grad():
            self.head[-1].weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
            self.head[-1].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def colour_squares() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """A large red square top-left and a small green one bottom-right, with the two quadrant masks."""
    image = torch.zeros(1, 3, 32, 32)
    image[0, 0, 2:14, 2:14] = 1.0
    image[0, 1, 20:28, 20:28] = 1.0
    top_left, bottom_right = np.zeros((32, 32), bool), np.zeros((32, 32), bool)
    top_left[:16, :16], bottom_right[16:, 16:] = True, True
    return image, top_left, bottom_right


def test_grad_cam_finds_the_evidence() -> None:
    model = ColourNet()
    model.train()
    model.head.eval()  # mixed modes must come back as they were
    image, red_region, green_region = colour_squares()
    images = image.repeat(2, 1, 1, 1)
    predicted = grad_cam(model, images, model.features)  # the large red square wins: class 1
    assert predicted.shape == (2, 32, 32) and predicted.min() >= 0 and predicted.max() == pytest.approx(1.0)
    assert (cam_mass_inside(predicted, red_region) > 0.9).all()
    per_image = grad_cam(model, images, model.features, class_index=torch.tensor([1, 0]))
    mass = cam_mass_inside(per_image, np.stack([red_region, green_region]))
    assert (mass > 0.9).all()
    assert cam_mass_inside(grad_cam(model, image, model.features, class_index=0), green_region)[0] > 0.9
    assert model.training and not model.head.training and model.features.training
    assert all(p.grad is None for p in model.parameters())


def test_grad_cam_works_with_frozen_parameters_and_empty_maps() -> None:
    model = ColourNet().requires_grad_(False)
    image, red_region, _ = colour_squares()
    cam = grad_cam(model, image, model.features, class_index=1)
    assert cam_mass_inside(cam, red_region)[0] > 0.9
    blank = grad_cam(model, torch.zeros(1, 3, 32, 32), model.features)
    assert (blank == 0).all() and np.isnan(cam_mass_inside(blank, red_region)[0])
    with pytest.raises(ValueError, match="4-D|\\(N, C, h, w\\)"):
        grad_cam(model, image, model.head[-1])
