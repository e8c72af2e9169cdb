"""Plots for the notebooks: data overview figures and evaluation figures (curves, confusion, calibration, Grad-CAM)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from sklearn import metrics as skm

from .data.labels import DX_CLASSES
from .images import load_resized
from .metrics import expected_calibration_error, reliability_table, sensitivity_specificity


def class_counts(index: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Bar chart of images per diagnosis, annotated with counts and shares."""
    counts = index["dx"].value_counts().reindex(DX_CLASSES).fillna(0).astype(int)
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    sns.barplot(x=counts.index, y=counts.values, hue=counts.index, palette="deep", legend=False, ax=ax)
    for i, n in enumerate(counts.values):
        ax.annotate(f"{n:,}\n{n / counts.sum():.1%}", (i, n), ha="center", va="bottom", fontsize=8)
    ax.set(xlabel="diagnosis (dx)", ylabel="images", title="Images per class", ylim=(0, counts.max() * 1.25))
    return ax


def images_per_lesion(index: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Histogram of how many images each lesion has."""
    per_lesion = index.groupby("lesion_id").size().value_counts().sort_index()
    ax = ax or plt.subplots(figsize=(5, 3))[1]
    ax.bar(per_lesion.index.astype(str), per_lesion.values, color="tab:blue")
    ax.set(xlabel="images of the lesion", ylabel="lesions", title="Images per lesion")
    return ax


def sample_grid(index: pd.DataFrame, per_class: int = 5, size: int = 96, seed: int = 0) -> plt.Figure:
    """A grid of random images, one row per diagnosis."""
    rng = np.random.default_rng(seed)
    classes = [dx for dx in DX_CLASSES if (index["dx"] == dx).any()]
    fig, axes = plt.subplots(len(classes), per_class, figsize=(1.6 * per_class, 1.6 * len(classes)), squeeze=False)
    for row, dx in zip(axes, classes):
        paths = index.loc[index["dx"] == dx, "path"].to_numpy()
        chosen = rng.choice(paths, size=min(per_class, len(paths)), replace=False)
        for ax in row:
            ax.axis("off")
        for ax, path in zip(row, chosen):
            ax.imshow(load_resized(path, size, "squash"))
        row[0].set_title(dx, loc="left", fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(history: pd.DataFrame) -> plt.Figure:
    """Loss and accuracy per epoch, training vs validation, side by side."""
    panels = {
        "loss": [("train_loss", "train"), ("val_loss", "validation")],
        "accuracy": [("train_accuracy", "train"), ("val_accuracy", "validation"),
                     ("val_balanced_accuracy", "validation (balanced)")],
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, (title, columns) in zip(axes, panels.items()):
        for (column, label), style in zip(columns, ["-o", "-o", "--s"]):
            if column in history:
                ax.plot(history["epoch"], history[column], style, markersize=3, label=label)
        ax.set(xlabel="epoch", ylabel=title, title=title.capitalize())
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], normalize: bool = True, ax: plt.Axes | None = None
) -> plt.Axes:
    """Confusion-matrix heatmap, row-normalised (recall on the diagonal) by default, with counts annotated."""
    counts = skm.confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)))
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = counts / counts.sum(axis=1, keepdims=True)
    values = np.nan_to_num(shares) if normalize else counts
    text = [[f"{s:.2f}\n({n})" if normalize else f"{n}" for s, n in zip(srow, nrow)] for srow, nrow in zip(shares, counts)]
    size = 1.0 + 0.75 * len(classes)
    ax = ax or plt.subplots(figsize=(size + 1.2, size))[1]
    sns.heatmap(values, annot=np.array(text), fmt="", cmap="Blues", vmin=0, vmax=1 if normalize else None,
                xticklabels=classes, yticklabels=classes, square=True, annot_kws={"fontsize": 8}, ax=ax)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix" + (" (rows sum to 1)" if normalize else ""))
    return ax


def roc_curves(
    y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], threshold: float | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """One-vs-rest ROC curves per class with AUC in the legend; two classes: one curve, optionally marking `threshold`."""
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    ax = ax or plt.subplots(figsize=(5, 5))[1]
    curve_classes = [1] if len(classes) == 2 else range(len(classes))
    for c in curve_classes:
        positive = y_true == c
        if positive.all() or not positive.any():
            continue  # ROC is undefined without both positives and negatives
        fpr, tpr, _ = skm.roc_curve(positive, probs[:, c])
        ax.plot(fpr, tpr, label=f"{classes[c]} (AUC {skm.auc(fpr, tpr):.3f})")
    if len(classes) == 2 and threshold is not None:
        sensitivity, specificity = sensitivity_specificity(y_true, probs[:, 1], threshold)
        ax.plot(1 - specificity, sensitivity, "o", color="black",
                label=f"threshold {threshold:.2f}: sens {sensitivity:.2f}, spec {specificity:.2f}")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)",
           title="ROC curves" if len(classes) > 2 else "ROC curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=8, loc="lower right")
    return ax


def precision_recall_curve(
    y_true: np.ndarray, p_positive: np.ndarray, threshold: float | None = None, ax: plt.Axes | None = None
) -> plt.Axes:
    """Precision-recall curve of a binary task with average precision, the prevalence baseline and an optional threshold."""
    y_true = np.asarray(y_true).astype(bool)
    precision, recall, _ = skm.precision_recall_curve(y_true, p_positive)
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    ax.plot(recall, precision, label=f"AP {skm.average_precision_score(y_true, p_positive):.3f}")
    if threshold is not None:
        predicted = np.asarray(p_positive) >= threshold
        point_precision = y_true[predicted].mean() if predicted.any() else 1.0
        point_recall = y_true[predicted].sum() / y_true.sum()
        ax.plot(point_recall, point_precision, "o", color="black", label=f"threshold {threshold:.2f}")
    ax.axhline(y_true.mean(), linestyle=":", color="grey", label=f"prevalence {y_true.mean():.2f}")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", title="Precision-recall curve", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=8)
    return ax


def reliability_diagram(
    y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15, label: str | None = None, ax: plt.Axes | None = None
) -> plt.Axes:
    """Accuracy vs confidence per bin, ECE in the legend; call again with the same ax to overlay (e.g. after scaling)."""
    table = reliability_table(y_true, probs, n_bins).query("count > 0")
    ax = ax or plt.subplots(figsize=(4.5, 4.5))[1]
    if not any(line.get_label() == "perfect calibration" for line in ax.lines):
        ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ece = expected_calibration_error(y_true, probs, n_bins)
    ax.plot(table["confidence"], table["accuracy"], "-o", markersize=4, label=f"{label or 'model'} (ECE {ece:.3f})")
    ax.set(xlabel="confidence (top-class probability)", ylabel="accuracy", title="Reliability diagram",
           xlim=(0, 1), ylim=(0, 1), aspect="equal")
    ax.legend(fontsize=8, loc="upper left")
    return ax


def prediction_grid(
    images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray, classes: Sequence[str],
    n: int = 16, ncols: int = 4,
) -> plt.Figure:
    """The first `n` images titled true / predicted (probability), green when right and red when wrong."""
    n = min(n, len(images))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.4 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i])
        right = y_true[i] == y_pred[i]
        ax.set_title(f"true {classes[y_true[i]]}\npred {classes[y_pred[i]]} ({probs[i, y_pred[i]]:.2f})",
                     fontsize=9, color="tab:green" if right else "tab:red")
    fig.tight_layout()
    return fig


def gradcam_overlays(
    images: np.ndarray, cams: np.ndarray | torch.Tensor, titles: Sequence[str] | None = None, ncols: int = 4,
    alpha: float = 0.45,
) -> plt.Figure:
    """Each image with its Grad-CAM map (values in [0, 1], same height and width) overlaid as a heatmap."""
    cams = cams.detach().cpu().numpy() if isinstance(cams, torch.Tensor) else np.asarray(cams)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.5 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i])
        ax.imshow(cams[i], cmap="jet", alpha=alpha, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig
