"""Splits: lesion-disjoint and stratified, deterministic, saved and reloaded; DermaMNIST; leakage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers.data import (
    DX_CLASSES,
    SPLIT_FRACTIONS,
    DataError,
    binary_label,
    dermamnist_split,
    image_level_split,
    leaked_lesions,
    lesion_split,
    load_ham10000,
    load_or_make_split,
    load_split,
    save_split,
    split_table,
    subsample_lesions,
)


@pytest.fixture(scope="module")
def index(synthetic_dir: Path) -> pd.DataFrame:
    return load_ham10000(synthetic_dir)


def lesions_per_split(index: pd.DataFrame, split: pd.Series) -> pd.Series:
    return index.assign(split=split.values).groupby("lesion_id")["split"].nunique()


def test_lesion_split_is_disjoint_and_stratified(index: pd.DataFrame) -> None:
    split = lesion_split(index, seed=0)
    assert lesions_per_split(index, split).max() == 1
    assert leaked_lesions(index, split) == 0
    table = split_table(index, split)
    shares = table["train"] / table["total"]
    assert shares["total"] == pytest.approx(SPLIT_FRACTIONS[0], abs=0.08)  # tiny classes of 4 lesions go 2/1/1
    assert (table.drop(index="total")[["train", "val", "test"]] > 0).all().all()


def test_lesion_split_is_deterministic_for_a_seed(index: pd.DataFrame) -> None:
    assert lesion_split(index, seed=3).equals(lesion_split(index, seed=3))
    assert not lesion_split(index, seed=3).equals(lesion_split(index, seed=4))


def test_image_level_split_leaks_lesions(index: pd.DataFrame) -> None:
    split = image_level_split(index, seed=0)
    assert leaked_lesions(index, split) > 0
    assert lesions_per_split(index, split).max() > 1


def test_bad_fractions(index: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="fractions"):
        lesion_split(index, fractions=(0.8, 0.3, 0.1))


def test_split_saves_and_reloads(index: pd.DataFrame, tmp_path: Path) -> None:
    split = lesion_split(index, seed=1)
    path = save_split(index, split, tmp_path / "split.csv")
    assert list(pd.read_csv(path).columns) == ["image_id", "lesion_id", "dx", "split"]
    assert load_split(index, path).equals(split)


def test_load_or_make_split_reuses_the_saved_file(index: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    first = load_or_make_split(index, path, seed=0)
    edited = first.where(first != "val", "test")  # prove the saved file, not a recomputation, is used
    save_split(index, edited, path)
    assert load_or_make_split(index, path, seed=0).equals(edited)
    subset = index.iloc[: len(index) // 2]
    assert len(load_or_make_split(subset, path, seed=0)) == len(subset)  # different images: remade


def test_load_split_that_does_not_cover_the_index(index: pd.DataFrame, tmp_path: Path) -> None:
    path = save_split(index.iloc[:10], lesion_split(index.iloc[:10]), tmp_path / "s.csv")
    with pytest.raises(DataError, match="does not cover"):
        load_split(index, path)


def test_dermamnist_split_from_csv(index: pd.DataFrame, tmp_path: Path) -> None:
    names = ["train", "valid", "test"]
    table = index[["image_id", "lesion_id", "dx"]].assign(dermamnist_split=[names[i % 3] for i in range(len(index))])
    table.to_csv(tmp_path / "dm.csv", index=False)
    split = dermamnist_split(index, tmp_path / "dm.csv")
    assert split.value_counts().to_dict() == {"train": (len(index) + 2) // 3, "val": (len(index) + 1) // 3, "test": len(index) // 3}
    table.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match=index.loc[0, "image_id"]):
        dermamnist_split(index, tmp_path / "short.csv")


def test_subsample_keeps_whole_lesions_and_every_class(index: pd.DataFrame) -> None:
    small = subsample_lesions(index, 80, seed=0, min_per_class=5)
    assert len(small) < len(index)
    assert set(small["dx"]) == set(index["dx"])
    full_sizes = index.groupby("lesion_id").size()
    assert (small.groupby("lesion_id").size() == full_sizes[small["lesion_id"].unique()]).all()


def test_binary_label() -> None:
    assert [binary_label(dx) for dx in DX_CLASSES] == ["malignant", "malignant", "benign", "benign", "malignant", "benign", "benign"]
    with pytest.raises(ValueError, match="unknown dx"):
        binary_label("xyz")


def test_real_split_is_lesion_disjoint_with_every_class_everywhere(real_dir: Path) -> None:
    index = load_ham10000(real_dir)
    split = lesion_split(index, seed=0)
    assert lesions_per_split(index, split).max() == 1
    table = split_table(index, split).drop(index="total")
    assert (table[["train", "val", "test"]] > 0).all().all()
    shares = table[["train", "val", "test"]].div(table["total"], axis=0)
    assert ((shares - list(SPLIT_FRACTIONS)).abs() < 0.03).all().all()


def test_official_dermamnist_split_leaks_lesions(real_dir: Path) -> None:
    csv = real_dir.parent / "dermamnist_split.csv"
    if not csv.exists():
        pytest.skip(f"no {csv.name} beside the real data")
    index = load_ham10000(real_dir)
    split = dermamnist_split(index, csv)
    assert split.value_counts().to_dict() == {"train": 7007, "val": 1003, "test": 2005}
    crossing = lesions_per_split(index, split)
    assert (crossing > 1).sum() == 1006
