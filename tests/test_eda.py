"""EDA summaries and plots: small made-up tables and the synthetic set give the expected numbers and figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import eda, plots
from helpers.data import load_ham10000


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


@pytest.fixture
def table() -> pd.DataFrame:
    """Six images of four lesions with holes in the metadata."""
    return pd.DataFrame({
        "lesion_id": ["L1", "L1", "L2", "L3", "L3", "L4"],
        "image_id": [f"I{i}" for i in range(6)],
        "dx": pd.Categorical(["nv", "nv", "nv", "mel", "mel", "bkl"]),
        "dx_type": ["follow_up", "follow_up", "histo", "histo", "histo", "consensus"],
        "age": pd.array([40, 40, None, 70, 70, 55], dtype="Float64"),
        "sex": ["male", "male", "unknown", "female", "female", "male"],
        "localization": ["back", "back", "trunk", "face", "face", "unknown"],
    })


@pytest.fixture(scope="module")
def synthetic_index(synthetic_dir: Path) -> pd.DataFrame:
    return load_ham10000(synthetic_dir, progress=False)


def write_mask(path: Path, mask: np.ndarray) -> Path:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return path


def test_sample_per_class_caps_each_class(table: pd.DataFrame) -> None:
    sample = eda.sample_per_class(table, 1, seed=0)
    assert sorted(sample["dx"].astype(str)) == ["bkl", "mel", "nv"]
    assert sample.equals(eda.sample_per_class(table, 1, seed=0))
    assert eda.sample_per_class(table, None) is table
    assert len(eda.sample_per_class(table, 10)) == len(table)


def test_lesion_table_counts_images_and_lesions(table: pd.DataFrame) -> None:
    lesions = eda.lesion_table(table)
    assert list(lesions.index) == ["bkl", "mel", "nv", "all"]
    assert lesions.loc["nv", ["images", "lesions"]].tolist() == [3, 2]
    assert lesions.loc["all", "images_per_lesion"] == 1.5
    assert lesions.loc["nv", "lesions_with_2+_images"] == 0.5


def test_missing_values_counts_empty_and_unknown(table: pd.DataFrame) -> None:
    missing = eda.missing_values(table)["missing_or_unknown"]
    assert missing.to_dict() == {"age": 1, "sex": 1, "localization": 1, "dx_type": 0}


def test_crosstab_and_diagnoses_by_value(table: pd.DataFrame) -> None:
    counts = eda.crosstab(table, "dx_type")
    assert list(counts.index) == ["bkl", "mel", "nv"] and list(counts.columns) == ["histo", "follow_up", "consensus"]
    assert np.allclose(eda.crosstab(table, "dx_type", normalize=True).sum(axis=1), 1)
    by_type = eda.diagnoses_by_value(table, "dx_type")
    assert by_type.loc["follow_up", "diagnoses"] == "nv"
    assert by_type.loc["histo", "malignant_share"] == round(2 / 3, 3)
    assert by_type.loc["consensus", "malignant_share"] == 0


def test_image_sizes_read_headers(synthetic_index: pd.DataFrame) -> None:
    sizes = eda.image_size_table(synthetic_index)
    assert list(sizes.index) == ["80x60"]
    assert sizes.loc["80x60", "all"] == len(synthetic_index)


def test_colour_of_a_flat_image() -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 200
    colour = eda.colour_of(image)
    assert colour["red"] == 200 and colour["green"] == colour["blue"] == 0
    assert colour["brightness"] == pytest.approx(0.299 * 200, rel=1e-5)
    assert colour["contrast"] == pytest.approx(0)


def test_colour_stats_on_synthetic_images(synthetic_index: pd.DataFrame) -> None:
    sample = eda.sample_per_class(synthetic_index, 3, seed=0)
    colours = eda.colour_stats(sample, size=16)
    assert list(colours["image_id"]) == list(sample["image_id"])
    assert colours[["red", "green", "blue", "brightness"]].stack().between(0, 255).all()
    ax = plots.mean_colours(colours)
    assert len(ax.patches) >= 3 * colours["dx"].nunique()


def test_masks_are_found_by_name_and_measured(table: pd.DataFrame, tmp_path: Path) -> None:
    (tmp_path / "deep" / "masks").mkdir(parents=True)
    half = np.zeros((30, 40), bool)
    half[:, :20] = True  # left half: touches the border, the centre 30x30 crop keeps 15 of its 20 columns
    write_mask(tmp_path / "deep" / "masks" / "I0_segmentation.png", half)
    write_mask(tmp_path / "I3_segmentation.png", np.ones((30, 40), bool))
    (tmp_path / "I4.png").touch()  # an image, not a mask
    masks = eda.find_masks(tmp_path)
    assert set(masks) == {"I0", "I3"}
    assert eda.load_mask(masks["I0"]).dtype == bool
    stats = eda.mask_stats(table, masks)
    assert list(stats["image_id"]) == ["I0", "I3"]
    assert stats["area_share"].tolist() == [0.5, 1.0]
    assert stats["kept_by_center_crop"].tolist() == pytest.approx([0.75, 0.75])
    summary = eda.mask_table(stats)
    assert summary.loc["all", "full_image_masks"] == 1 and summary.loc["all", "touches_border"] == 1
    assert eda.mask_table(eda.mask_stats(table, {})).empty


def test_mask_of_a_central_spot() -> None:
    spot = np.zeros((30, 40), bool)
    spot[10:20, 15:25] = True
    assert eda.mask_of(spot) == {"area_share": 100 / 1200, "touches_border": False, "kept_by_center_crop": 1.0}


def test_no_masks_in_the_synthetic_set(synthetic_dir: Path) -> None:
    assert eda.find_masks(synthetic_dir) == {}


def test_data_summary_of_the_synthetic_set(synthetic_index: pd.DataFrame) -> None:
    summary = eda.data_summary(synthetic_index)
    assert summary["images"] == len(synthetic_index) == sum(summary["per_class"].values())
    assert summary["lesions"] == synthetic_index["lesion_id"].nunique()
    assert 0 < summary["nv_share"] < 1 and summary["imbalance_ratio"] >= 1
    assert sum(summary["dx_type"].values()) == len(synthetic_index)


def test_box_by_dx_drops_missing_values(table: pd.DataFrame) -> None:
    ax = plots.box_by_dx(table, "age", label="age (years)")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["bkl\nn=1", "mel\nn=2", "nv\nn=2"]


def test_category_heatmap_annotates_shares_or_counts(table: pd.DataFrame) -> None:
    shares = plots.category_heatmap(table, "sex")
    assert {t.get_text() for t in shares.texts} - {""} == {"100%", "67%", "33%"}
    counts = plots.category_heatmap(table, "dx_type", annotate="count")
    assert sorted(t.get_text() for t in counts.texts).count("0") == 5


def test_mask_grid_outlines_each_image(synthetic_index: pd.DataFrame, tmp_path: Path) -> None:
    rows = synthetic_index.head(3)
    spot = np.zeros((30, 40), bool)
    spot[5:25, 10:30] = True
    masks = {image_id: write_mask(tmp_path / f"{image_id}_segmentation.png", spot) for image_id in rows["image_id"]}
    fig = plots.mask_grid(rows, masks, ncols=2)
    assert len(fig.axes) == 4
    assert all(ax.collections for ax in fig.axes[:3]) and not fig.axes[3].collections
