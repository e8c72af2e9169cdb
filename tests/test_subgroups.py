"""Subgroup tables: per sex, age band, site and dx_type, lesion-bootstrap intervals, small groups flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.evaluation.subgroups import MIN_LESIONS, age_band, subgroup_table

CLASSES = ["mel", "nv", "bkl"]


def fake_test_split(n_lesions: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Two images per lesion; the model is good on women and at chance on men, and there are few 'back' lesions."""
    rng = np.random.default_rng(seed)
    lesion_dx = rng.integers(0, 3, n_lesions)
    lesion_sex = np.where(np.arange(n_lesions) % 2, "female", "male")
    lesion_site = np.where(np.arange(n_lesions) < 10, "back", "face")
    y = np.repeat(lesion_dx, 2)
    sex, site = np.repeat(lesion_sex, 2), np.repeat(lesion_site, 2)
    good = np.eye(3)[y] * 0.8 + 0.2 / 3
    noise = rng.dirichlet(np.ones(3), size=len(y))
    probs = np.where((sex == "female")[:, None], good, noise)
    rows = pd.DataFrame({"lesion_id": np.repeat([f"L{i}" for i in range(n_lesions)], 2), "sex": sex,
                         "localization": site, "age": np.repeat(rng.choice([25.0, 50.0, 80.0, np.nan], n_lesions), 2),
                         "dx_type": np.where(y == 0, "histo", "follow_up")})
    return y, probs, rows


def test_subgroups_separate_where_the_model_works_from_where_it_does_not() -> None:
    y, probs, rows = fake_test_split()
    table = subgroup_table(y, probs, CLASSES, rows, n_boot=100)
    assert table.loc[("sex", "female"), "balanced_accuracy"] == pytest.approx(1.0)
    assert table.loc[("sex", "male"), "balanced_accuracy"] < 0.7
    assert table.loc[("sex", "female"), "images"] + table.loc[("sex", "male"), "images"] == len(y)
    low, high = map(float, table.loc[("sex", "male"), "bal. acc. 95% CI"].split("–"))
    assert low <= table.loc[("sex", "male"), "balanced_accuracy"] <= high
    assert set(table.loc["age_band"].index) == {"under 30", "45–59", "75 and over", "unknown"}


def test_small_groups_are_flagged_not_dropped() -> None:
    y, probs, rows = fake_test_split()
    table = subgroup_table(y, probs, CLASSES, rows, n_boot=50)
    assert table.loc[("localization", "back"), "lesions"] == 10 < MIN_LESIONS
    assert table.loc[("localization", "back"), "flag"] == "too few lesions to say anything"
    assert table.loc[("localization", "face"), "flag"] == ""


def test_dx_type_groups_without_melanoma_have_no_sensitivity() -> None:
    y, probs, rows = fake_test_split()
    table = subgroup_table(y, probs, CLASSES, rows, n_boot=50)
    assert np.isnan(table.loc[("dx_type", "follow_up"), "sensitivity"])
    assert table.loc[("dx_type", "histo"), "mel lesions"] > 0


def test_bad_inputs_name_the_column() -> None:
    y, probs, rows = fake_test_split()
    with pytest.raises(ValueError, match="localization"):
        subgroup_table(y, probs, CLASSES, rows.drop(columns="localization"))
    with pytest.raises(ValueError, match="rows has 3 entries"):
        subgroup_table(y, probs, CLASSES, rows.head(3))


def test_age_bands() -> None:
    assert age_band(pd.Series([5, 30, 44.9, 60, 90, None])).tolist() == [
        "under 30", "30–44", "30–44", "60–74", "75 and over", "unknown"]
