"""What an image-level split leaks (notebook 02): test lesions with images in train, and accuracy by kind of image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .data.splits import leaked_lesions

KINDS = ("lesion also in train", "other images of the lesion, none in train", "single-image lesion")


def leak_table(index: pd.DataFrame, splits: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Per split: test images and lesions, test lesions that also have images in train, and the test images they cover."""
    def leak(split: pd.Series) -> dict[str, Any]:
        test, train = index.loc[split == "test", "lesion_id"], index.loc[split == "train", "lesion_id"]
        return {"test images": len(test), "test lesions": test.nunique(),
                "test lesions also in train": leaked_lesions(index, split),
                "share of test images whose lesion is in train": round(float(test.isin(train).mean()), 3)}

    return pd.DataFrame.from_dict({name: leak(split) for name, split in splits.items()}, orient="index")


def accuracy_by_lesion(data: Any, evaluation: Any) -> pd.DataFrame:
    """Each test image of data (a SplitData): whether evaluation got it right, and what train holds of its lesion
    (the `kind` column, one of KINDS)."""
    test = data.rows("test").assign(correct=evaluation.y_pred == evaluation.y_true)
    several = test["lesion_id"].map(data.index["lesion_id"].value_counts()) > 1
    kind = np.select([test["lesion_id"].isin(data.rows("train")["lesion_id"]), several], list(KINDS[:2]), KINDS[2])
    return test.assign(kind=pd.Categorical(kind, categories=list(KINDS)))
