"""Plots for the notebooks: data overview figures and evaluation figures (curves, confusion, calibration, Grad-CAM)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from PIL import Image
from sklearn import metrics as skm

from ..training.augment import AugmentConfig, preview
from ..data.labels import DX_CLASSES
from .eda import crosstab, load_mask
from ..data.images import load_resized
from ..data.images import open_rgb
from ..evaluation.metrics import expected_calibration_error, reliability_table, sensitivity_specificity


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


def _image_axes(n: int, ncols: int, cell: tuple[float, float]) -> tuple[plt.Figure, list[plt.Axes]]:
    """A grid with room for n images, axes switched off; returns the first n axes."""
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell[0] * ncols, cell[1] * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def prediction_grid(
    images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray, classes: Sequence[str],
    n: int = 16, ncols: int = 4,
) -> plt.Figure:
    """The first `n` images titled true / predicted (probability), green when right and red when wrong."""
    fig, axes = _image_axes(min(n, len(images)), ncols, (2.2, 2.4))
    for i, ax in enumerate(axes):
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
    fig, axes = _image_axes(len(images), max(1, min(ncols, len(images))), (2.4, 2.5))
    for i, ax in enumerate(axes):
        ax.imshow(images[i])
        ax.imshow(cams[i], cmap="jet", alpha=alpha, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def gradcam_cases(model: torch.nn.Module, evaluation: object, images: np.ndarray, per_class: int = 1, seed: int = 0,
                  ncols: int = 4) -> plt.Figure:
    """`gradcam_overlays` of up to per_class right and wrong predictions of each true class (`pick_cases`), titled."""
    from ..evaluation.splits import pick_cases
    from ..evaluation.gradcam import classifier_cams

    cases = pick_cases(evaluation.y_true, evaluation.y_pred, evaluation.classes, per_class=per_class, seed=seed)
    chosen = np.asarray(images)[cases["index"].to_numpy()]
    titles = [f"{'right' if r.right else 'wrong'}: {r.true} → {r.pred}" for r in cases.itertuples()]
    return gradcam_overlays(chosen, classifier_cams(model, chosen), titles, ncols=ncols)


def linked_pairs_grid(pairs: pd.DataFrame, index: pd.DataFrame, n: int = 8, ncols: int = 4) -> plt.Figure:
    """The first n linked pairs (helpers.evaluation.leakage.linked_pairs), each pair's two images side by side with their ids."""
    paths = index.set_index(index["image_id"].astype(str))["path"]
    pairs = pairs.head(n)
    fig, axes = _image_axes(2 * len(pairs), 2 * max(1, min(ncols // 2, len(pairs))), (2.2, 2.0))
    for k, row in enumerate(pairs.itertuples()):
        for side, (image, lesion) in enumerate(((row.image_id_a, row.lesion_id_a), (row.image_id_b, row.lesion_id_b))):
            ax = axes[2 * k + side]
            ax.imshow(open_rgb(paths[image]))
            ax.set_title(f"{lesion}\n{image}" + (f" · {_pair_label(row)}" if side else ""), fontsize=8)
    fig.tight_layout()
    return fig


def _pair_label(row: Any) -> str:
    """A linked pair's embedding similarity, or 'published' for a pair only the published list has."""
    similarity = pd.to_numeric(getattr(row, "similarity", None), errors="coerce")
    return "published" if pd.isna(similarity) else f"{float(similarity):.3f}"


def _dx_palette() -> dict[str, tuple[float, float, float]]:
    return dict(zip(DX_CLASSES, sns.color_palette("deep", len(DX_CLASSES))))


def box_by_dx(table: pd.DataFrame, column: str, label: str | None = None, ax: plt.Axes | None = None) -> plt.Axes:
    """Box plot of a numeric column (age, brightness, lesion area…) per diagnosis, with n per class under each box."""
    data = pd.DataFrame({"dx": table["dx"].astype(str), "value": pd.to_numeric(table[column], errors="coerce")})
    data = data.dropna().astype({"value": float})
    order = [dx for dx in DX_CLASSES if (data["dx"] == dx).any()]
    ax = ax or plt.subplots(figsize=(7, 3.5))[1]
    sns.boxplot(data=data, x="dx", y="value", hue="dx", order=order, hue_order=order, palette=_dx_palette(),
                legend=False, fliersize=2, ax=ax)
    counts = data["dx"].value_counts()
    ax.set_xticks(range(len(order)), [f"{dx}\nn={counts[dx]:,}" for dx in order])
    ax.set(xlabel="diagnosis (dx)", ylabel=label or column, title=f"{(label or column).capitalize()} by diagnosis")
    ax.grid(axis="y", alpha=0.3)
    return ax


def category_heatmap(index: pd.DataFrame, column: str, annotate: str = "share", ax: plt.Axes | None = None) -> plt.Axes:
    """Heatmap of diagnosis (rows) by the values of a metadata column, coloured by share of each diagnosis's images; annotate 'share' or 'count'."""
    counts, shares = crosstab(index, column), crosstab(index, column, normalize=True)
    percent = shares.map(lambda s: "" if s == 0 else "<1%" if s < 0.005 else f"{s:.0%}")
    text = counts.map(lambda n: f"{n:,}") if annotate == "count" else percent
    ax = ax or plt.subplots(figsize=(2.8 + 0.7 * counts.shape[1], 0.6 + 0.45 * len(counts)))[1]
    sns.heatmap(shares, annot=text, fmt="", cmap="Blues", vmin=0, vmax=1, annot_kws={"fontsize": 8},
                cbar_kws={"label": "share of the diagnosis's images"}, ax=ax)
    ax.set(xlabel=column, ylabel="diagnosis (dx)", title=f"{column} by diagnosis" + (" (images)" if annotate == "count" else ""))
    ax.tick_params(axis="y", rotation=0)
    if counts.shape[1] > 3:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
    return ax


def mean_colours(colours: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Mean red, green and blue per diagnosis as grouped bars (± one standard deviation), each class's mean colour as a swatch on top."""
    order = [dx for dx in DX_CLASSES if (colours["dx"].astype(str) == dx).any()]
    grouped = colours.assign(dx=colours["dx"].astype(str)).groupby("dx")[["red", "green", "blue"]]
    means, stds = grouped.mean().reindex(order), grouped.std().reindex(order).fillna(0)
    ax = ax or plt.subplots(figsize=(8, 3.5))[1]
    x = np.arange(len(order))
    for offset, channel, colour in zip((-0.27, 0, 0.27), ("red", "green", "blue"), ("tab:red", "tab:green", "tab:blue")):
        ax.bar(x + offset, means[channel], 0.27, yerr=stds[channel], color=colour, alpha=0.75, label=channel,
               error_kw={"elinewidth": 0.8, "alpha": 0.6})
    for i, dx in enumerate(order):
        ax.add_patch(plt.Rectangle((i - 0.4, 262), 0.8, 22, color=means.loc[dx].to_numpy() / 255, clip_on=False))
    ax.set_xticks(x, order)
    ax.set(xlabel="diagnosis (dx)", ylabel="mean pixel value (0-255)", ylim=(0, 290), title="Mean colour per diagnosis")
    ax.legend(fontsize=8, loc="lower right", ncols=3)
    return ax


def mask_grid(rows: pd.DataFrame, masks: dict[str, Path], ncols: int = 4) -> plt.Figure:
    """The images of rows (image_id, dx, path) with their lesion-mask outlines, titled with diagnosis and lesion area share."""
    n = len(rows)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.2 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows.itertuples()):
        image = open_rgb(row.path)
        mask = load_mask(masks[row.image_id])
        outline = np.asarray(Image.fromarray(mask).resize(image.size, Image.Resampling.NEAREST))
        ax.imshow(image)
        ax.contour(outline, levels=[0.5], colors="yellow", linewidths=1.2)
        ax.set_title(f"{row.dx}: lesion {mask.mean():.0%} of image", fontsize=9)
    fig.tight_layout()
    return fig


def generalization_gap(histories: dict[str, pd.DataFrame], ax: plt.Axes | None = None) -> plt.Axes:
    """Train minus validation accuracy per epoch for several runs: how fast each one overfits."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    for name, history in histories.items():
        ax.plot(history["epoch"], history["train_accuracy"] - history["val_accuracy"], marker="o", label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="epoch", ylabel="train − validation accuracy", title="Generalisation gap")
    ax.legend()
    return ax

# ---------------------------------------------------------------- preprocessing (notebook 02)


def resize_policies(path: str | Path, size: int = 128, policies: Sequence[str] | None = None) -> plt.Figure:
    """One image as stored (the square that center_crop keeps dashed) beside its size x size cache version under each policy."""
    from ..data.images import RESIZE_POLICIES

    policies = list(policies or RESIZE_POLICIES)
    image = open_rgb(path)
    width, height = image.size
    fig, axes = plt.subplots(1, 1 + len(policies), figsize=(2.7 * (width / height + len(policies)), 3.2),
                             gridspec_kw={"width_ratios": [width / height] + [1] * len(policies)})
    side = min(width, height)
    axes[0].imshow(image)
    axes[0].add_patch(plt.Rectangle(((width - side) / 2 - 0.5, (height - side) / 2 - 0.5), side, side, fill=False,
                                    edgecolor="yellow", linestyle="--", linewidth=1.5))
    axes[0].set_title(f"stored: {width}×{height}\n(dashed: what center_crop keeps)", fontsize=9)
    for ax, policy in zip(axes[1:], policies):
        ax.imshow(load_resized(path, size, policy))
        ax.set_title(f"{policy}\n{size}×{size}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def augmentation_grid(previews: dict[str, np.ndarray | torch.Tensor], original: np.ndarray | torch.Tensor | None = None) -> plt.Figure:
    """One row per augmentation setting with its augmented copies of one image (uint8 (n, H, W, 3) each), the original first."""
    rows = {name: np.asarray(images.cpu() if isinstance(images, torch.Tensor) else images) for name, images in previews.items()}
    ncols = max(len(images) for images in rows.values()) + (original is not None)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.25 * ncols + 0.9, 1.3 * len(rows)), squeeze=False)
    for row_axes, (name, images) in zip(axes, rows.items()):
        shown = ([np.asarray(original.cpu() if isinstance(original, torch.Tensor) else original)] if original is not None else []) + list(images)
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(False)
        for ax, image in zip(row_axes, shown):
            ax.imshow(image)
        row_axes[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if original is not None:
        axes[0, 0].set_title("original", fontsize=9)
        axes[0, 1].set_title("augmented copies →", fontsize=9, loc="left")
    fig.tight_layout()
    return fig

AUGMENTATIONS: tuple[str, ...] = ("hflip", "vflip", "rot90", "crop_scale", "brightness", "contrast", "saturation")


def augmentation_previews(path: str | Path, size: int = 128, n: int = 6, seed: int = 0,
                          names: Sequence[str] = AUGMENTATIONS, **settings: object) -> plt.Figure:
    """`augmentation_grid` of one image file: a row per augmentation alone (`only(name)`), then all together.

    settings: `AugmentConfig` fields to change from its defaults (e.g. crop_scale=(0.2, 1.0)).
    """
    augment = AugmentConfig(**settings)
    image = torch.from_numpy(np.array(load_resized(path, size)))
    previews = {name: preview(image, augment.only(name), n=n, seed=seed) for name in names}
    previews["all together"] = preview(image, augment, n=n, seed=seed)
    return augmentation_grid(previews, original=image)


def split_shares(index: pd.DataFrame, split: pd.Series) -> plt.Figure:
    """Left: each class's share of every split's images (log scale). Right: how each class's images divide into the splits."""
    from ..data.splits import SPLITS

    table = pd.crosstab(index["dx"].astype(str), split.rename("split").to_numpy())
    order = [dx for dx in DX_CLASSES if dx in table.index]
    parts = [s for s in SPLITS if s in table.columns]
    table = table.reindex(index=order, columns=parts)
    colours = dict(zip(SPLITS, sns.color_palette("deep", 3)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1.3, 1]})
    shares = table / table.sum()
    x, width = np.arange(len(order)), 0.8 / len(parts)
    for i, part in enumerate(parts):
        left.bar(x + (i - (len(parts) - 1) / 2) * width, shares[part], width, color=colours[part],
                 label=f"{part} ({table[part].sum():,} images)")
    left.set_xticks(x, order)
    left.set_yscale("log")
    left.set_yticks([t for t in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0) if shares.min().min() / 2 <= t <= 1.0])
    left.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}" if v >= 0.01 else f"{v:.1%}"))
    left.yaxis.set_minor_formatter(plt.NullFormatter())
    left.set(xlabel="diagnosis (dx)", ylabel="share of the split's images (log)", title="Class mix of each split")
    left.legend(fontsize=8)
    left.grid(axis="y", alpha=0.3, which="both")
    fractions = table.div(table.sum(axis=1), axis=0)
    start = np.zeros(len(order))
    for part in parts:
        right.barh(order, fractions[part], left=start, color=colours[part], label=part)
        for y, (s, f) in enumerate(zip(start, fractions[part])):
            if f >= 0.06:
                right.text(s + f / 2, y, f"{f:.0%}", ha="center", va="center", fontsize=8, color="white")
        start += fractions[part].to_numpy()
    right.set_yticks(range(len(order)), [f"{dx} (n={table.loc[dx].sum():,})" for dx in order])
    right.invert_yaxis()
    right.set(xlim=(0, 1), xlabel="share of the class's images", title="Where each class's images go")
    right.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    right.legend(fontsize=8, ncols=len(parts), loc="lower center", bbox_to_anchor=(0.5, 1.08), frameon=False)
    fig.tight_layout()
    return fig


def grouped_accuracy(table: pd.DataFrame, group: str = "test images", hue: str = "model", value: str = "accuracy",
                     ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars of `value` per `group` (rows) and `hue` (colours) from a long table with a column n, each bar labelled with n."""
    groups, hues = list(dict.fromkeys(table[group])), list(dict.fromkeys(table[hue]))
    ax = ax or plt.subplots(figsize=(8, 0.9 + 0.45 * len(groups) * len(hues)))[1]
    height = 0.8 / len(hues)
    for i, (name, colour) in enumerate(zip(hues, sns.color_palette("deep", len(hues)))):
        rows = table[table[hue] == name].set_index(group).reindex(groups)
        y = np.arange(len(groups)) + (i - (len(hues) - 1) / 2) * height
        present = rows[value].notna().to_numpy()
        ax.barh(y[present], rows[value][present], height, color=colour, label=name)
        for yi, v, n in zip(y[present], rows[value][present], rows["n"][present]):
            ax.text(v + 0.01, yi, f"{v:.2f} (n={int(n):,})", va="center", fontsize=8)
        for yi in y[~present]:
            ax.text(0.01, yi, "none", va="center", fontsize=8, color=colour)
    ax.set_yticks(range(len(groups)), groups)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.15), xlabel=value.replace("_", " "), title=f"Test {value.replace('_', ' ')} by kind of test image")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14 - 0.2 / len(groups)), ncols=min(2, len(hues)),
              frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return ax

# ---------------------------------------------------------------- scaling study (notebook 06)


_ARM_PALETTE = sns.color_palette("tab10") + sns.color_palette("Dark2") + sns.color_palette("Set1")
_ARM_COLOURS: dict[str, tuple[float, float, float]] = {}


def _arm_colours(labels: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per arm, the same in every plot of a session: an arm takes the next free colour when first drawn.

    So a plot of a few arms (pretrained vs from scratch) keeps the colours the full plots gave them.
    """
    for label in sorted(set(labels) - set(_ARM_COLOURS)):
        _ARM_COLOURS[label] = _ARM_PALETTE[len(_ARM_COLOURS) % len(_ARM_PALETTE)]
    return {label: _ARM_COLOURS[label] for label in set(labels)}


def compact_number(value: float) -> str:
    """A tick label for counts spanning decades: 500, 2k, 10k, 3M, 1.5G, 2T, 100P."""
    for scale, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def count_ticks(low: float, high: float) -> list[float]:
    """Log-axis ticks that never crowd: powers of ten over more than 3 decades, else 1-2-5, else 1…9 per decade."""
    low, high = sorted((max(low, 1e-300), max(high, 1e-300)))
    options = ([(1,)] if np.log10(high / low) > 3 else []) + [(1, 2, 5), tuple(range(1, 10))]
    decades = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    ticks: list[float] = []
    for subs in options:
        ticks = [m * 10.0 ** e for e in decades for m in subs if low <= m * 10.0 ** e <= high * (1 + 1e-9)]
        if len(ticks) >= 2:
            break
    return ticks


def _log_count_axis(axis: plt.Axes) -> None:
    """A log axis of counts with count_ticks labelled in compact numbers (500, 2k, 5M), minor ticks unlabelled."""
    from matplotlib.ticker import Locator, NullFormatter

    class CountLocator(Locator):
        def __call__(self) -> list[float]:
            return self.tick_values(*self.axis.get_view_interval())

        def tick_values(self, vmin: float, vmax: float) -> list[float]:
            return count_ticks(vmin, vmax)

    axis.set_major_locator(CountLocator())
    axis.set_major_formatter(plt.FuncFormatter(lambda v, _: compact_number(v)))
    axis.set_minor_formatter(NullFormatter())


def _legend_outside(ax: plt.Axes) -> None:
    """The legend to the right of the axes, where it hides no point (the figure grows to hold it)."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)


def scaling_error(table: pd.DataFrame, fits: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Test error (1 − balanced accuracy) against training images on log-log axes: runs, means per size, fitted power laws."""
    from .powerlaw import fitted_error

    ax = ax or plt.subplots(figsize=(7, 4.5))[1]
    colours = _arm_colours(table["label"])
    fit_of = fits.set_index("label")
    for label, rows in table.groupby("label", sort=False):
        colour = colours[label]
        ax.scatter(rows["n_train"], rows["error"], s=12, alpha=0.35, color=colour)
        means = rows.groupby("n_train")["error"].mean()
        fit = fit_of.loc[label] if label in fit_of.index else None
        name = label if fit is None or pd.isna(fit["b"]) else f"{label} (b = {fit['b']:.2f})"
        ax.plot(means.index, means.values, "o", color=colour, label=name)
        if fit is not None:
            n = np.geomspace(means.index.min(), means.index.max(), 100)
            ax.plot(n, fitted_error(fit, n), "--", color=colour, lw=1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_count_axis(ax.xaxis)
    ax.yaxis.set_minor_formatter(plt.FuncFormatter(lambda v, _: f"{v:.2f}"))
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.2f}"))
    ax.set(xlabel="training images n (log)", ylabel="test error = 1 − balanced accuracy (log)",
           title="Error vs training-set size, fitted a·n^(−b) + c (dashed)")
    _legend_outside(ax)
    ax.grid(alpha=0.3, which="both")
    return ax


def scaling_metric(table: pd.DataFrame, metric: str = "balanced_accuracy", x: str = "n_train",
                   ax: plt.Axes | None = None, title: str | None = None) -> plt.Axes:
    """A metric against x (log) per arm: mean over seeds with the range of seeds as error bars."""
    ax = ax or plt.subplots(figsize=(7, 4.5))[1]
    colours = _arm_colours(table["label"])
    for label, rows in table.groupby("label", sort=False):
        stats = rows.groupby(x)[metric].agg(["mean", "min", "max"])
        ax.errorbar(stats.index, stats["mean"], yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                    marker="o", capsize=3, color=colours[label], label=label)
    ax.set_xscale("log")
    _log_count_axis(ax.xaxis)
    ax.set(xlabel=x.replace("_", " ") + " (log)", ylabel=f"test {metric.replace('_', ' ')}",
           title=title or f"Test {metric.replace('_', ' ')} vs {x.replace('_', ' ')} (bars: range over seeds)")
    _legend_outside(ax)
    ax.grid(alpha=0.3, which="both")
    return ax


def scaling_cost(table: pd.DataFrame, x: str, metric: str = "balanced_accuracy", ax: plt.Axes | None = None) -> plt.Axes:
    """Every run's metric against a cost column (parameters, train_compute_flops…) on a log x axis; marker size grows with the fraction."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    colours = _arm_colours(table["label"])
    for label, rows in table.groupby("label", sort=False):
        ax.scatter(rows[x], rows[metric], s=15 + 60 * rows["fraction"], alpha=0.75, color=colours[label], label=label)
    ax.set_xscale("log")
    _log_count_axis(ax.xaxis)
    ax.set(xlabel=x.replace("_", " ") + " (log)", ylabel=f"test {metric.replace('_', ' ')}",
           title=f"{metric.replace('_', ' ').capitalize()} vs {x.replace('_', ' ')} (bigger marker: more data)")
    _legend_outside(ax)
    ax.grid(alpha=0.3, which="both")
    return ax


# ---------------------------------------------------------------- will it work elsewhere? (notebook 07)


def risk_coverage_curves(curves: dict[str, pd.DataFrame], levels: Sequence[float] = (), ax: plt.Axes | None = None) -> plt.Axes:
    """Risk (error rate of the kept cases) against coverage, one line per label (e.g. "score · split"), AURC in the
    legend; dotted verticals at the coverage levels."""
    ax = ax or plt.subplots(figsize=(6.5, 4.5))[1]
    for label, curve in curves.items():
        ax.plot(curve["coverage"], curve["risk"], label=f"{label} (AURC {curve['risk'].mean():.3f})")
    for level in levels:
        ax.axvline(level, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="coverage (share of cases the model decides)", ylabel="risk (error rate of those cases)",
           title="Risk–coverage", xlim=(0, 1), ylim=(0, None))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def class_mix(mix: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Grouped bars of each class's share (rows: classes) per column (e.g. all cases and those set aside, per split)."""
    ax = ax or plt.subplots(figsize=(8, 4))[1]
    mix.plot.bar(ax=ax, width=0.8, color=sns.color_palette("Paired", len(mix.columns)))
    ax.set(xlabel="diagnosis", ylabel="share of cases", title="Which cases are set aside")
    ax.tick_params(axis="x", rotation=0)
    ax.legend(fontsize=8)
    return ax
