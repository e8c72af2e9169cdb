"""How one model does for whom: balanced accuracy, macro AUC and melanoma sensitivity per subgroup of the test split.

Subgroups come from HAM10000's metadata: sex, age band, anatomical site and `dx_type` (how the diagnosis was
confirmed: histopathology, follow-up, expert consensus or confocal microscopy). `dx_type` is a property of the
label, not of the patient: nevi are mostly confirmed by follow-up and melanomas always by histopathology, so
its groups differ in their class mix by construction. Every interval resamples lesions within the group, and a
group with too few lesions (or melanomas) to say anything is flagged rather than dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .metrics import bootstrap_ci, classification_metrics

SUBGROUP_COLUMNS: tuple[str, ...] = ("sex", "age_band", "localization", "dx_type")
AGE_BANDS: tuple[tuple[float, float, str], ...] = ((0, 30, "under 30"), (30, 45, "30–44"), (45, 60, "45–59"),
                                                   (60, 75, "60–74"), (75, np.inf, "75 and over"))
MIN_LESIONS = 30  # fewer lesions than this: intervals too wide to compare groups
MIN_MELANOMA_LESIONS = 5  # fewer melanoma lesions than this: no melanoma sensitivity worth reading


def age_band(age: pd.Series) -> pd.Series:
    """Age in years as a band label ('unknown' where missing)."""
    bands = pd.Series("unknown", index=age.index, dtype=object)
    values = pd.to_numeric(age, errors="coerce")
    for low, high, label in AGE_BANDS:
        bands[(values >= low) & (values < high)] = label
    return bands


def subgroup_table(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], rows: pd.DataFrame,
                   columns: Sequence[str] = SUBGROUP_COLUMNS, n_boot: int = 1000, seed: int = 0,
                   positive: str = "mel") -> pd.DataFrame:
    """One row per (column, group): images, lesions, balanced accuracy, macro AUC, positive-class recall, 95% CIs, flag.

    rows: the test split's metadata in the order of y_true (lesion_id plus the columns; age becomes age_band).
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    if len(rows) != len(y_true):
        raise ValueError(f"rows has {len(rows)} entries but there are {len(y_true)} predictions")
    rows = rows.reset_index(drop=True)
    if "age_band" in columns and "age_band" not in rows and "age" in rows:
        rows = rows.assign(age_band=age_band(rows["age"]))
    missing = [column for column in ("lesion_id", *columns) if column not in rows]
    if missing:
        raise ValueError(f"subgroups need the column(s) {', '.join(missing)}; found {', '.join(rows.columns)}")
    positive_index = list(classes).index(positive) if positive in classes else None
    table = [_group_row(column, str(value), np.flatnonzero(rows[column].astype(str).to_numpy() == str(value)),
                        y_true, probs, classes, rows["lesion_id"].to_numpy(), positive_index, n_boot, seed)
             for column in columns for value in sorted(rows[column].astype(str).unique())]
    return pd.DataFrame(table).set_index(["subgroup", "group"])


def _group_row(column: str, value: str, where: np.ndarray, y_true: np.ndarray, probs: np.ndarray,
               classes: Sequence[str], lesions: np.ndarray, positive: int | None, n_boot: int, seed: int) -> dict:
    y, p, groups = y_true[where], probs[where], lesions[where]
    point = classification_metrics(y, p, classes)
    recall_name = f"recall_{classes[positive]}" if positive is not None else None
    names = ("balanced_accuracy", "macro_auc") + ((recall_name,) if recall_name else ())
    ci = bootstrap_ci(y, p, groups, names, n_boot=n_boot, seed=seed, classes=classes)
    n_lesions = len(np.unique(groups))
    n_positive = len(np.unique(groups[y == positive])) if positive is not None else 0
    recall = point["per_class_recall"][classes[positive]] if positive is not None else np.nan
    flag = ("too few lesions to say anything" if n_lesions < MIN_LESIONS else
            f"too few {classes[positive]} lesions for a sensitivity" if positive is not None and n_positive < MIN_MELANOMA_LESIONS
            else "")
    return {"subgroup": column, "group": value, "images": len(where), "lesions": n_lesions,
            f"{classes[positive] if positive is not None else 'positive'} lesions": n_positive,
            "balanced_accuracy": point["balanced_accuracy"], "bal. acc. 95% CI": _interval(ci["balanced_accuracy"]),
            "macro_auc": point["macro_auc"], "macro AUC 95% CI": _interval(ci["macro_auc"]),
            "sensitivity": recall if n_positive else np.nan,
            "sensitivity 95% CI": _interval(ci[recall_name]) if recall_name and n_positive else "–",
            "flag": flag}


def _interval(bounds: tuple[float, float]) -> str:
    low, high = bounds
    return "–" if not (np.isfinite(low) and np.isfinite(high)) else f"{low:.3f}–{high:.3f}"


def groups_below(table: pd.DataFrame, overall: float, column: str = "bal. acc. 95% CI") -> list[str]:
    """The groups of a subgroup_table with enough lesions whose whole 95% interval (column) lies below overall.

    Groups flagged for too few lesions are left out (too small to say anything); one flagged only for too few
    melanomas still has a balanced accuracy. Each group is named 'subgroup group', e.g. 'sex female'.
    """
    below = []
    for (subgroup, group), row in table.iterrows():
        if row["lesions"] < MIN_LESIONS or row[column] == "–":
            continue
        high = float(row[column].split("–")[1])
        if high < overall:
            below.append(f"{subgroup} {group}")
    return below
