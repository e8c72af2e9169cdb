"""Evaluation plots draw on small data with the Agg backend and return figures with the expected panels and lines."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from helpers import plots
from helpers.data.labels import BINARY_CLASSES, DX_CLASSES
from helpers.evaluation.metrics import apply_temperature

Predictions = tuple[np.ndarray, np.ndarray]


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture
def multiclass() -> Predictions:
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(DX_CLASSES), 200)
    logits = rng.normal(size=(200, len(DX_CLASSES)))
    logits[np.arange(200), y] += 2.0
    return y, apply_temperature(logits, 0.5)


@pytest.fixture
def binary() -> Predictions:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 150)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, 150), 0, 1)
    return y, np.stack([1 - p, p], axis=1)


def test_learning_curves() -> None:
    history = pd.DataFrame({
        "epoch": [1, 2, 3], "train_loss": [1.2, 0.9, 0.7], "val_loss": [1.3, 1.0, 0.95],
        "train_accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.45, 0.55, 0.6], "val_balanced_accuracy": [0.3, 0.4, 0.45],
    })
    fig = plots.learning_curves(history)
    loss, accuracy = fig.axes
    assert [len(loss.lines), len(accuracy.lines)] == [2, 3]
    assert list(loss.lines[1].get_ydata()) == [1.3, 1.0, 0.95]


def test_confusion_matrix_is_row_normalised_with_counts(multiclass: Predictions) -> None:
    y, probs = multiclass
    ax = plots.confusion_matrix(y, probs.argmax(axis=1), DX_CLASSES)
    values = np.asarray(ax.collections[0].get_array()).reshape(len(DX_CLASSES), len(DX_CLASSES))
    assert values.sum(axis=1) == pytest.approx(np.ones(len(DX_CLASSES)))
    assert len(ax.texts) == len(DX_CLASSES) ** 2 and all("(" in t.get_text() for t in ax.texts)
    raw = plots.confusion_matrix(y, probs.argmax(axis=1), DX_CLASSES, normalize=False)
    assert raw.collections[0].get_array().sum() == len(y)


def test_roc_curves_multiclass_and_binary(multiclass: Predictions, binary: Predictions) -> None:
    ax = plots.roc_curves(*multiclass, DX_CLASSES)
    assert len(ax.lines) == len(DX_CLASSES) + 1  # one per class and the chance line
    assert all("AUC" in t.get_text() for t in ax.get_legend().get_texts()[:-1])
    ax = plots.roc_curves(*binary, BINARY_CLASSES, threshold=0.5)
    assert len(ax.lines) == 3  # curve, operating point, chance line
    assert ax.get_legend().get_texts()[0].get_text().startswith("malignant (AUC")


def test_precision_recall_curve(binary: Predictions) -> None:
    y, probs = binary
    ax = plots.precision_recall_curve(y, probs[:, 1], threshold=0.5)
    assert len(ax.lines) == 3  # curve, operating point, prevalence line
    assert ax.lines[2].get_ydata()[0] == pytest.approx(y.mean())


def test_reliability_diagram_overlays(multiclass: Predictions) -> None:
    y, probs = multiclass
    ax = plots.reliability_diagram(y, probs, label="before")
    same = plots.reliability_diagram(y, apply_temperature(np.log(probs), 2.0), label="after", ax=ax)
    assert same is ax and len(ax.lines) == 3  # diagonal once, then one line per call
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[1].startswith("before (ECE") and labels[2].startswith("after (ECE")


def test_prediction_grid_colours_titles() -> None:
    images = np.random.default_rng(2).integers(0, 256, size=(6, 24, 24, 3), dtype=np.uint8)
    y_true, y_pred = np.array([0, 1, 2, 3, 4, 5]), np.array([0, 1, 0, 3, 0, 5])
    probs = np.full((6, len(DX_CLASSES)), 1 / len(DX_CLASSES))
    fig = plots.prediction_grid(images, y_true, y_pred, probs, DX_CLASSES, n=16, ncols=4)
    assert len(fig.axes) == 8 and sum(bool(ax.images) for ax in fig.axes) == 6
    colours = [ax.title.get_color() for ax in fig.axes[:6]]
    assert colours == ["tab:green", "tab:green", "tab:red", "tab:green", "tab:red", "tab:green"]


def test_gradcam_overlays() -> None:
    images = np.zeros((3, 16, 16, 3), dtype=np.uint8)
    cams = np.random.default_rng(3).uniform(size=(3, 16, 16))
    fig = plots.gradcam_overlays(images, cams, titles=["a", "b", "c"])
    assert len(fig.axes) == 3 and all(len(ax.images) == 2 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
