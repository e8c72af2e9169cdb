"""Plots for the notebooks: data overview figures (more join as the course grows)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .data.labels import DX_CLASSES
from .images import load_resized


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
