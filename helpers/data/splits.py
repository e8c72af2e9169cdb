"""Train/val/test splits: lesion-disjoint stratified, official DermaMNIST, and image-level (leaky).

The lesion-disjoint split also keeps together lesions that are linked: HAM10000 files some photographs of one lesion
under two lesion_ids. `linked_lesions.csv` beside this module lists such pairs; its `source` column says who found
each: the project's search (helpers.evaluation.leakage: near-identical image embeddings with identical dx, sex, site
and age), or the published list of Abhishek, Jain & Hamarneh, "Investigating the quality of DermaMNIST and
Fitzpatrick17k dermatological image datasets", Sci Data 2025 (`newly_discovered_duplicates.csv` in
github.com/kakumarabhishek/Corrected-Skin-Image-Datasets, DermaMNIST/HAM10000_DuplicateConfirmation), or both. A pair
joins one group only where both of its images are in the index under those ids, so the list never touches other data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.io import atomic_open
from ..core.errors import DataError
from .source import data_home

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)  # train, val, test: the shares of every split here
SPLIT_COLUMNS: tuple[str, ...] = ("image_id", "lesion_id", "dx", "split")
LINKED_LESIONS = Path(__file__).with_name("linked_lesions.csv")
LINK_COLUMNS: tuple[str, ...] = ("image_id_a", "lesion_id_a", "image_id_b", "lesion_id_b")
LINK_SOURCES: tuple[str, ...] = ("embedding search", "Abhishek, Jain & Hamarneh 2025")  # who found a pair (`source`)
# Part of a saved split's file name, so a split made with an older list of links is not reused
# (linked1: the embedding search's pairs; linked2: with the published pairs merged in).
SPLIT_VERSION = "linked2"


def grouped_stratified_split(
    index: pd.DataFrame,
    group_col: str = "lesion_id",
    fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
    seed: int = 0,
) -> pd.Series:
    """Assign each image to train/val/test so that no group crosses splits and each class keeps the fractions.

    Groups of one class are shuffled (seeded), then each group joins the split that is least full
    relative to its target share, so every split gets a class's first groups and per-class image
    proportions land close to `fractions`.
    """
    check_fractions(fractions)
    for column in (group_col, "dx"):
        if column not in index:
            raise DataError(f"split needs the column {column!r}; found {', '.join(index.columns)}")
    rng = np.random.default_rng(seed)
    groups = index.groupby(group_col, observed=True).agg(dx=("dx", majority_dx), size=("dx", "size"))
    assignment: dict[str, str] = {}
    targets = np.asarray(fractions, dtype=float)
    for _, members in groups.groupby("dx", observed=True, sort=True):
        order = rng.permutation(len(members))
        filled = np.zeros(len(SPLITS))
        for name, size in members.iloc[order]["size"].items():
            with np.errstate(divide="ignore", invalid="ignore"):  # a split with target 0 is never chosen
                fullness = np.where(targets > 0, filled / targets, np.inf)
            choice = int(np.argmin(fullness))
            assignment[name] = SPLITS[choice]
            filled[choice] += size
    return index[group_col].map(assignment).rename("split")


def majority_dx(values: pd.Series) -> str:
    """The most frequent diagnosis among a group's images (the first in sorted order on a tie)."""
    return values.astype(str).mode().iloc[0]


def check_fractions(fractions: tuple[float, float, float]) -> None:
    """ValueError unless fractions are three non-negative shares (train, val, test) summing to 1."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")


def read_links(path: str | Path = LINKED_LESIONS) -> pd.DataFrame:
    """Pairs of (image_id, lesion_id) that show one lesion filed under two lesion_ids."""
    links = pd.read_csv(path, dtype=str)
    missing = [c for c in LINK_COLUMNS if c not in links]
    if missing:
        raise DataError(f"linked-lesions file {path} lacks the column(s) {', '.join(missing)}")
    return links


def lesion_groups(index: pd.DataFrame, links: pd.DataFrame | None = None) -> pd.Series:
    """Each image's lesion group: its lesion_id, merged with every lesion linked to it (transitively).

    A link applies only where both its images are in index under its lesion ids. The group is named after
    its first lesion_id in sorted order, so an unlinked lesion's group is its own lesion_id.
    """
    links = read_links() if links is None else links
    present = set(zip(index["image_id"].astype(str), index["lesion_id"].astype(str)))
    parent: dict[str, str] = {}

    def root(lesion: str) -> str:
        while parent.get(lesion, lesion) != lesion:
            lesion = parent[lesion] = parent.get(parent[lesion], parent[lesion])
        return lesion

    for a_image, a_lesion, b_image, b_lesion in links[list(LINK_COLUMNS)].itertuples(index=False):
        if (a_image, a_lesion) in present and (b_image, b_lesion) in present:
            first, second = sorted((root(a_lesion), root(b_lesion)))
            parent[second] = first
    return index["lesion_id"].astype(str).map(root).rename("lesion_group")


def lesion_split(index: pd.DataFrame, seed: int = 0, fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
                 links: pd.DataFrame | None = None) -> pd.Series:
    """Lesion-disjoint, class-stratified train/val/test split: no lesion_id, and no linked pair, in two splits."""
    grouped = index.assign(lesion_group=lesion_groups(index, links).to_numpy())
    return grouped_stratified_split(grouped, "lesion_group", fractions, seed).set_axis(index.index)


def image_level_split(index: pd.DataFrame, seed: int = 0, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> pd.Series:
    """Class-stratified split by image, ignoring lesions; it leaks lesions and exists only to show that."""
    return grouped_stratified_split(index, "image_id", fractions, seed)


def dermamnist_split(index: pd.DataFrame, split_csv: str | Path) -> pd.Series:
    """The official DermaMNIST split of each image, read from a CSV of image_id, dermamnist_split."""
    table = pd.read_csv(split_csv, dtype=str)
    for column in ("image_id", "dermamnist_split"):
        if column not in table:
            raise DataError(f"{split_csv} lacks the column {column!r}")
    mapping = table.set_index("image_id")["dermamnist_split"].replace({"valid": "val", "validation": "val"})
    split = index["image_id"].map(mapping)
    if split.isna().any():
        absent = index.loc[split.isna(), "image_id"].tolist()
        raise DataError(f"{len(absent)} image(s) are not in {split_csv}, e.g. {', '.join(absent[:5])}")
    unknown = sorted(set(split) - set(SPLITS))
    if unknown:
        raise DataError(f"{split_csv}: unknown split name(s) {unknown}; expected {', '.join(SPLITS)}")
    return split.rename("split")


def leaked_lesions(index: pd.DataFrame, split: pd.Series, between: tuple[str, str] = ("train", "test")) -> int:
    """Number of lesions that have images in both named splits."""
    first, second = (set(index.loc[split == name, "lesion_id"]) for name in between)
    return len(first & second)


def split_table(index: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    """Images per class (rows) and split (columns), with totals."""
    table = pd.crosstab(index["dx"], split.rename("split"), margins=True, margins_name="total")
    return table.reindex(columns=[*[s for s in SPLITS if s in table.columns], "total"])


def save_split(index: pd.DataFrame, split: pd.Series, path: str | Path) -> Path:
    """Write image_id, lesion_id, dx, split to a CSV atomically."""
    path = Path(path)
    table = index[["image_id", "lesion_id", "dx"]].assign(split=split.values)
    with atomic_open(path, "w", newline="") as handle:
        table.to_csv(handle, index=False)
    return path


def load_split(index: pd.DataFrame, path: str | Path) -> pd.Series:
    """Read a saved split CSV and align it to index; DataError if it does not cover the index."""
    table = pd.read_csv(path, dtype=str)
    missing = [c for c in SPLIT_COLUMNS if c not in table]
    if missing:
        raise DataError(f"split file {path} lacks the column(s) {', '.join(missing)}")
    split = index["image_id"].map(table.set_index("image_id")["split"])
    if split.isna().any():
        absent = index.loc[split.isna(), "image_id"].tolist()
        raise DataError(f"split file {path} does not cover {len(absent)} image(s), e.g. {', '.join(absent[:5])}")
    return split.rename("split")


def load_or_make_split(index: pd.DataFrame, path: str | Path | None = None, seed: int = 0,
                       fractions: tuple[float, float, float] = SPLIT_FRACTIONS, name: str = "ham10000") -> pd.Series:
    """Reuse the lesion-disjoint split saved at path when it matches index exactly, else make and save it.

    Without a path the split lives in data/splits/<name>-<n images>-seed<seed>-<SPLIT_VERSION>.csv, shared by every
    notebook.
    """
    path = Path(path) if path else data_home() / "splits" / f"{name}-{len(index)}img-seed{seed}-{SPLIT_VERSION}.csv"
    if path.exists():
        saved = pd.read_csv(path, dtype=str)
        if set(saved.get("image_id", [])) == set(index["image_id"]):
            return load_split(index, path)
    split = lesion_split(index, seed=seed, fractions=fractions)
    save_split(index, split, path)
    return split


def subsample_lesions(index: pd.DataFrame, max_images: int | None, seed: int = 0, min_per_class: int = 15) -> pd.DataFrame:
    """A subset of whole lesions with about max_images images, class proportions kept, no class below min_per_class."""
    if max_images is None or len(index) <= max_images:
        return index
    rng = np.random.default_rng(seed)
    keep: list[str] = []
    for _, rows in index.groupby("dx", observed=True, sort=True):
        quota = max(min_per_class, round(max_images * len(rows) / len(index)))
        sizes = rows.groupby("lesion_id").size()
        taken = 0
        for lesion in sizes.index[rng.permutation(len(sizes))]:
            if taken >= quota:
                break
            keep.append(lesion)
            taken += sizes[lesion]
    return index[index["lesion_id"].isin(keep)].reset_index(drop=True)
