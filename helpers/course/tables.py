"""Tables as a notebook shows them: counts as whole numbers, learning rates in scientific notation, text not cut off.

pandas shows a column that mixes counts and fractions as floats ("1119.000000"), rounds a learning rate
of 1e-4 to 0.0 with the rest of a history, and cuts text cells at 50 characters ("no downl…"); these
helpers return what to display instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

RATE_COLUMNS = ("lr", "backbone_lr", "head_lr")


def _is_whole(values: pd.Series) -> bool:
    """Whether a float column holds whole numbers only (NaN aside)."""
    finite = values.dropna()
    return bool(len(finite)) and bool(np.all(np.isfinite(finite)) and np.all(finite == np.round(finite)))


def history_table(history: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A training history to display: learning rates as 2.0e-03, whole-number columns as integers, the rest rounded."""
    table = history.copy()
    for column in table.columns:
        values = table[column]
        if column in RATE_COLUMNS and pd.api.types.is_numeric_dtype(values):
            table[column] = [f"{v:.1e}" if pd.notna(v) else "" for v in values]
        elif pd.api.types.is_float_dtype(values) and _is_whole(values) and not values.isna().any():
            table[column] = values.astype("int64")
        elif pd.api.types.is_float_dtype(values):
            table[column] = values.round(digits)
    return table


def value_table(values: Mapping[str, Any], column: str = "value", digits: int = 3) -> pd.DataFrame:
    """A mapping of mixed numbers (counts, rates, thresholds) as a one-column table: counts whole, fractions rounded."""
    def shown(value: Any) -> Any:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            return value
        if isinstance(value, (int, np.integer)) or float(value).is_integer():
            return f"{int(value):,}"
        return f"{float(value):.{digits}g}" if abs(float(value)) < 1 else f"{float(value):,.{max(digits - 2, 1)}f}"

    return pd.DataFrame({column: [shown(v) for v in values.values()]}, index=pd.Index(list(values), dtype=object))


class FullText:
    """A DataFrame shown with every text cell in full (pandas cuts them at display.max_colwidth, 50 characters)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def _repr_html_(self) -> str:
        with pd.option_context("display.max_colwidth", None):
            return self.frame._repr_html_()

    def __repr__(self) -> str:
        with pd.option_context("display.max_colwidth", None):
            return repr(self.frame)


def full_text(frame: pd.DataFrame) -> FullText:
    """frame to display as a cell's last expression with no text cell cut off (e.g. the notes of fitted power laws)."""
    return FullText(frame)
