"""What a benign/malignant threshold means in lesions: scores per lesion and outcomes per 1,000 lesions."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from ..data.labels import MALIGNANT_DX


def lesion_scores(groups: np.ndarray, dx: np.ndarray, p_positive: np.ndarray) -> pd.DataFrame:
    """One row per lesion: its diagnosis and its score, the mean malignancy probability of its images."""
    table = pd.DataFrame({"lesion_id": np.asarray(groups), "dx": np.asarray(dx, dtype=str),
                          "p": np.asarray(p_positive, dtype=float)})
    if table.groupby("lesion_id")["dx"].nunique().gt(1).any():
        raise ValueError("every image of a lesion must have the same dx")
    return table.groupby("lesion_id", sort=False).agg(dx=("dx", "first"), p=("p", "mean"), images=("p", "size"))


def per_thousand_lesions(groups: np.ndarray, dx: np.ndarray, p_positive: np.ndarray, threshold: float,
                         malignant: Collection[str] = MALIGNANT_DX, focus: str = "mel") -> dict[str, float]:
    """Outcomes per 1,000 lesions of a threshold on lesion scores: focus lesions (e.g. melanomas) and those missed,
    malignant lesions missed, benign lesions flagged; plus the raw counts."""
    lesions = lesion_scores(groups, dx, p_positive)
    flagged = lesions["p"] >= threshold
    is_focus, is_malignant = lesions["dx"] == focus, lesions["dx"].isin(set(malignant))
    counts = {f"{focus}_lesions": int(is_focus.sum()), f"{focus}_missed": int((is_focus & ~flagged).sum()),
              "malignant_lesions": int(is_malignant.sum()), "malignant_missed": int((is_malignant & ~flagged).sum()),
              "benign_lesions": int((~is_malignant).sum()), "benign_flagged": int((~is_malignant & flagged).sum())}
    scale = 1000 / len(lesions)
    return {"lesions": len(lesions), "threshold": float(threshold), **counts,
            **{f"{key}_per_1000": round(value * scale, 1) for key, value in counts.items()}}
