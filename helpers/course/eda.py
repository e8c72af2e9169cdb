"""Data summaries for the EDA notebook: metadata tables, image sizes, colour statistics and lesion masks."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ..data.images import load_resized
from ..data.labels import DX_CLASSES, MALIGNANT_DX
from ..core.errors import DataError

MASK_SUFFIX = "_segmentation.png"
MISSING_VALUES = ("unknown", "")


def _present_classes(index: pd.DataFrame) -> list[str]:
    return [dx for dx in DX_CLASSES if (index["dx"] == dx).any()]


def _parallel(function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(function, items, chunksize=32))


def sample_per_class(index: pd.DataFrame, n: int | None, seed: int = 0) -> pd.DataFrame:
    """Up to n random images of each diagnosis (all images when n is None), in index order."""
    if n is None:
        return index
    picked = [rows.sample(min(n, len(rows)), random_state=seed).index
              for _, rows in index.groupby("dx", observed=True)]
    return index.loc[sorted(np.concatenate(picked))]


def lesion_table(index: pd.DataFrame) -> pd.DataFrame:
    """Per diagnosis and overall: images, lesions, images per lesion and the share of lesions with several images."""
    def row(rows: pd.DataFrame) -> dict[str, float]:
        sizes = rows.groupby("lesion_id").size()
        return {"images": len(rows), "lesions": len(sizes), "images_per_lesion": round(len(rows) / len(sizes), 2),
                "lesions_with_2+_images": round(float((sizes > 1).mean()), 3)}

    rows = {dx: row(index[index["dx"] == dx]) for dx in _present_classes(index)}
    rows["all"] = row(index)
    return pd.DataFrame.from_dict(rows, orient="index").astype({"images": int, "lesions": int})


def missing_values(index: pd.DataFrame, columns: Sequence[str] = ("age", "sex", "localization", "dx_type")) -> pd.DataFrame:
    """Rows per metadata column that are empty (NaN) or 'unknown', with their share of all images."""
    counts = {}
    for column in columns:
        if column in index:
            values = index[column]
            counts[column] = int(values.isna().sum() + values.astype("string").isin(MISSING_VALUES).sum())
    table = pd.DataFrame({"missing_or_unknown": pd.Series(counts, dtype=int)})
    table["share"] = (table["missing_or_unknown"] / max(len(index), 1)).round(4)
    return table


def crosstab(index: pd.DataFrame, column: str, normalize: bool = False) -> pd.DataFrame:
    """Images per diagnosis (rows, in class order) and value of column (columns, most frequent first); shares per row if normalize."""
    values = index[column].astype("string").fillna("unknown")
    table = pd.crosstab(index["dx"].astype(str), values)
    table = table.reindex(index=_present_classes(index), columns=values.value_counts().index, fill_value=0)
    table.index.name, table.columns.name = "dx", column
    return table.div(table.sum(axis=1), axis=0) if normalize else table


def diagnoses_by_value(index: pd.DataFrame, column: str) -> pd.DataFrame:
    """For each value of column: its images, the diagnoses it occurs with, and the share of them that are malignant."""
    table = crosstab(index, column).T
    return pd.DataFrame({
        "images": table.sum(axis=1),
        "diagnoses": table.apply(lambda row: ", ".join(dx for dx, n in row.items() if n > 0), axis=1),
        "malignant_share": (table[[dx for dx in table.columns if dx in MALIGNANT_DX]].sum(axis=1)
                            / table.sum(axis=1)).round(3),
    })


def image_sizes(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Width and height of each image file, read from the file headers only."""
    def size(path: str | Path) -> tuple[int, int]:
        try:
            with Image.open(path) as image:
                return image.size
        except OSError as err:
            raise DataError(f"cannot read image {path}: {err}") from err

    return pd.DataFrame(_parallel(size, list(paths)), columns=["width", "height"])


def image_size_table(index: pd.DataFrame) -> pd.DataFrame:
    """Images per size ('width x height', rows) and diagnosis (columns), with a total column."""
    sizes = image_sizes(index["path"].tolist())
    label = (sizes["width"].astype(str) + "x" + sizes["height"].astype(str)).to_numpy()
    table = pd.crosstab(label, index["dx"].astype(str).to_numpy()).reindex(columns=_present_classes(index), fill_value=0)
    table.index.name, table.columns.name = "width x height", "dx"
    table["all"] = table.sum(axis=1)
    return table.sort_values("all", ascending=False)


def colour_of(image: np.ndarray) -> dict[str, float]:
    """Mean red, green, blue and brightness (luma, 0-255) and contrast (luma standard deviation) of one RGB image."""
    pixels = np.asarray(image, dtype=np.float32).reshape(-1, 3)
    luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    red, green, blue = pixels.mean(axis=0)
    return {"red": float(red), "green": float(green), "blue": float(blue),
            "brightness": float(luma.mean()), "contrast": float(luma.std())}


def colour_stats(index: pd.DataFrame, size: int = 64) -> pd.DataFrame:
    """image_id, dx and colour_of() each image, computed on the whole image resized to size x size."""
    colours = _parallel(lambda path: colour_of(load_resized(path, size, "squash")), index["path"].tolist())
    return pd.concat([index[["image_id", "dx"]].reset_index(drop=True), pd.DataFrame(colours)], axis=1)


def find_masks(root: str | Path) -> dict[str, Path]:
    """Map image_id to its lesion mask file (<image_id>_segmentation.png) anywhere under root."""
    masks: dict[str, Path] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if name.endswith(MASK_SUFFIX):
                masks.setdefault(name[: -len(MASK_SUFFIX)], Path(dirpath) / name)
    return masks


def load_mask(path: str | Path) -> np.ndarray:
    """A lesion mask file as a boolean (height, width) array: True on the lesion."""
    try:
        with Image.open(path) as mask:
            return np.asarray(mask.convert("L")) > 127
    except OSError as err:
        raise DataError(f"cannot read mask {path}: {err}") from err


def mask_of(mask: np.ndarray) -> dict[str, float]:
    """Share of the image covered by the lesion, whether it touches the border, and the share of it a centre square crop keeps."""
    height, width = mask.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    area = mask.sum()
    kept = mask[top:top + side, left:left + side].sum() / area if area else 1.0
    return {"area_share": float(mask.mean()), "touches_border": bool(border.any()), "kept_by_center_crop": float(kept)}


def mask_stats(index: pd.DataFrame, masks: dict[str, Path]) -> pd.DataFrame:
    """image_id, dx and mask_of() for each image of index that has a mask."""
    rows = index[index["image_id"].isin(masks.keys())]
    stats = _parallel(lambda image_id: mask_of(load_mask(masks[image_id])), rows["image_id"].tolist())
    return pd.concat([rows[["image_id", "dx"]].reset_index(drop=True),
                      pd.DataFrame(stats, columns=["area_share", "touches_border", "kept_by_center_crop"])], axis=1)


def data_summary(index: pd.DataFrame) -> dict[str, Any]:
    """Headline numbers of the data for the metrics JSON: classes, lesions, imbalance, missing metadata."""
    counts = index["dx"].value_counts().reindex(_present_classes(index))
    sizes = index.groupby("lesion_id").size()
    result: dict[str, Any] = {
        "images": len(index), "lesions": int(len(sizes)),
        "images_per_lesion": round(len(index) / len(sizes), 3),
        "lesions_with_2+_images": int((sizes > 1).sum()),
        "per_class": {dx: int(n) for dx, n in counts.items()},
        "nv_share": round(float((index["dx"] == "nv").mean()), 4),
        "imbalance_ratio": round(float(counts.max() / counts.min()), 1),
        "missing_or_unknown": missing_values(index)["missing_or_unknown"].to_dict(),
    }
    if "dx_type" in index:
        result["dx_type"] = {str(k): int(v) for k, v in index["dx_type"].value_counts().items() if v > 0}
    return result


def mask_table(masks: pd.DataFrame) -> pd.DataFrame:
    """Per diagnosis and overall, from mask_stats(): masks, median lesion area share, share touching the border,
    share of which a centre square crop keeps at least 90%, and masks covering the whole image."""
    def row(rows: pd.DataFrame) -> dict[str, float]:
        return {"masks": len(rows), "median_area_share": round(float(rows["area_share"].median()), 3),
                "touches_border": round(float(rows["touches_border"].mean()), 3),
                "crop_keeps_90%": round(float((rows["kept_by_center_crop"] >= 0.9).mean()), 3),
                "full_image_masks": int((rows["area_share"] >= 0.999).sum())}

    if masks.empty:
        return pd.DataFrame(columns=["masks", "median_area_share", "touches_border", "crop_keeps_90%", "full_image_masks"])
    dx = masks["dx"].astype(str)
    rows = {c: row(masks[dx == c]) for c in DX_CLASSES if (dx == c).any()}
    rows["all"] = row(masks)
    return pd.DataFrame.from_dict(rows, orient="index").astype({"masks": int, "full_image_masks": int})
