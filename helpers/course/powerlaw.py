"""Power laws of error against training-set size, where a bigger model overtakes a smaller one, and what a grid cannot say.

The law is error(n) ≈ a·n^(−b) + c: a falling power law in the number of training images n with a floor c
(the error no amount of data removes for this model and recipe). It is fitted per arm to the mean error
over seeds at each n, by least squares with a ≥ 0, 0 ≤ b ≤ B_MAX and 0 ≤ c ≤ 1.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeWarning, curve_fit

B_MAX = 3.0
FIT_COLUMNS = ("label", "model", "pretrained", "parameters", "a", "b", "c", "b_sd", "c_sd", "n_points", "n_runs",
               "n_min", "n_max", "rmse", "note")


def power_law(n: np.ndarray | float, a: float, b: float, c: float) -> np.ndarray:
    """a·n^(−b) + c."""
    return a * np.asarray(n, dtype=float) ** (-b) + c


def fit_power_law(n: np.ndarray, error: np.ndarray) -> dict[str, Any]:
    """Fit error ≈ a·n^(−b) + c to the mean error at each distinct n; parameters, their SDs and a note on how well they are determined."""
    means = pd.Series(np.asarray(error, dtype=float)).groupby(np.asarray(n, dtype=float)).mean()
    sizes, values = means.index.to_numpy(), means.to_numpy()
    result: dict[str, Any] = {"a": None, "b": None, "c": None, "b_sd": None, "c_sd": None, "n_points": int(len(sizes)),
                              "n_runs": int(len(np.asarray(n))), "n_min": int(sizes.min()) if len(sizes) else None,
                              "n_max": int(sizes.max()) if len(sizes) else None, "rmse": None}
    if len(sizes) < 3:
        return {**result, "note": f"not fitted: {len(sizes)} training-set size(s) for 3 parameters"}
    scale = sizes.max()  # fit in n / n_max: a stays of the order of the error, which keeps the problem well scaled
    start = (max(values.max() - values.min(), 1e-3), 0.5, float(np.clip(values.min() * 0.8, 0.0, 0.99)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            (a_scaled, b, c), covariance = curve_fit(lambda x, a, b, c: power_law(x, a, b, c), sizes / scale, values,
                                                     p0=start, bounds=([0, 0, 0], [np.inf, B_MAX, 1]), maxfev=20000)
    except (RuntimeError, ValueError) as err:
        return {**result, "note": f"fit failed: {err}"}
    sd = np.sqrt(np.clip(np.diag(covariance), 0, None))
    residual = values - power_law(sizes / scale, a_scaled, b, c)
    result.update(a=float(a_scaled * scale ** b), b=float(b), c=float(c), b_sd=_finite_or_none(sd[1]),
                  c_sd=_finite_or_none(sd[2]), rmse=float(np.sqrt(np.mean(residual ** 2))))
    return {**result, "note": fit_note(result, a_scaled)}


def fit_note(fit: dict[str, Any], a_scaled: float) -> str:
    """Why a fit cannot be trusted, in words; empty when nothing stands out."""
    notes = []
    if fit["n_points"] < 4:
        notes.append(f"only {fit['n_points']} sizes for 3 parameters: the curve passes through them, b and c are not determined")
    if a_scaled < 1e-6:
        notes.append("a = 0: error does not fall with n in this grid")
    if fit["b"] < 1e-3 or fit["b"] > B_MAX - 1e-3:
        notes.append(f"b at its bound ({fit['b']:.3g})")
    if fit["c"] < 1e-4:
        notes.append("c at 0: no floor visible within the grid")
    elif fit["c"] > 1 - 1e-4:
        notes.append("c at 1")
    if fit["b_sd"] is None or fit["b_sd"] > fit["b"] or (fit["c_sd"] or 0) > 0.5:
        notes.append("parameters uncertain (SD of b larger than b, or of c above 0.5)")
    return "; ".join(notes)


def fit_arms(table: pd.DataFrame, metric: str = "error") -> pd.DataFrame:
    """One power-law fit per arm (label) of a results table; the columns of FIT_COLUMNS."""
    fits = []
    for label, rows in table.groupby("label", sort=False):
        fit = fit_power_law(rows["n_train"].to_numpy(), rows[metric].to_numpy())
        fits.append({"label": label, "model": rows["model"].iloc[0], "pretrained": bool(rows["pretrained"].iloc[0]),
                     "parameters": int(rows["parameters"].iloc[0]), **fit})
    return pd.DataFrame(fits, columns=list(FIT_COLUMNS))


def fitted_error(fit: pd.Series | dict[str, Any], n: np.ndarray) -> np.ndarray:
    """The fitted error at n (NaN everywhere when the arm has no fit)."""
    if fit["a"] is None or pd.isna(fit["a"]):
        return np.full(len(np.asarray(n)), np.nan)
    return power_law(n, fit["a"], fit["b"], fit["c"])


def seed_spread(table: pd.DataFrame, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """Mean, SD and number of seeds of a metric per arm and training-set size."""
    grouped = table.groupby(["label", "fraction", "n_train"], sort=False)[metric]
    return grouped.agg(mean="mean", sd="std", seeds="count").reset_index()


def overtaking(table: pd.DataFrame, fits: pd.DataFrame, spread: float | None = None) -> pd.DataFrame:
    """For each pair of from-scratch arms (smaller, bigger by parameters): from which n the bigger one has the lower error.

    'Overtakes from n' means lower mean error at that n and at every larger n of the grid ('measured'),
    or lower fitted error from that n up to the largest n of the grid ('fitted'). `spread` (a typical
    seed SD of the error) flags gaps too small to tell apart from seed noise.
    """
    scratch = table[~table["pretrained"].astype(bool)]
    means = scratch.groupby(["label", "n_train"])["error"].mean().unstack("label")
    sizes = scratch.groupby("label")["parameters"].first().sort_values()
    fit_of = fits.set_index("label")
    pairs = []
    for small, big in itertools.combinations(sizes.index, 2):
        both = means[[small, big]].dropna()
        if len(both) < 2:
            continue
        measured = _first_lasting(both.index.to_numpy(), (both[big] < both[small]).to_numpy())
        grid = np.geomspace(both.index.min(), both.index.max(), 200)
        fitted = _first_lasting(grid, fitted_error(fit_of.loc[big], grid) < fitted_error(fit_of.loc[small], grid))
        gap = float(both[small].iloc[-1] - both[big].iloc[-1])
        pairs.append({"smaller": small, "bigger": big, "parameters": f"{sizes[small] / 1e6:.1f}M → {sizes[big] / 1e6:.1f}M",
                      "measured: overtakes from n": measured, "fitted: overtakes from n": fitted,
                      "error gap at largest n": round(gap, 3),
                      "verdict": _verdict(measured, both.index.min(), gap, spread)})
    return pd.DataFrame(pairs)


def _first_lasting(n: np.ndarray, lower: np.ndarray) -> int | None:
    """The smallest n from which `lower` holds at every larger n; None when it does not hold at the largest."""
    if not len(lower) or not lower[-1]:
        return None
    start = len(lower) - int(np.argmin(lower[::-1])) if not lower.all() else 0
    return int(round(n[start]))


def _verdict(measured: int | None, smallest: float, gap: float, spread: float | None) -> str:
    """The measured result of one pair in words."""
    if measured is None:
        text = "does not overtake within the grid"
    elif measured == int(round(smallest)):
        text = "bigger model better at every measured size"
    else:
        text = f"overtakes from n = {measured:,}"
    if spread is not None and abs(gap) < 2 * spread:
        text += f" (gap at the largest n {abs(gap):.3f} < 2 seed SDs {2 * spread:.3f}: within seed noise)"
    return text


def grid_notes(table: pd.DataFrame, fits: pd.DataFrame, spread: pd.DataFrame) -> list[str]:
    """Plain statements of where this grid is too small to say something."""
    notes = [f"{row.label}: {row.note}" for row in fits.itertuples() if row.note]
    single = []
    for fraction, cells in spread.groupby("fraction"):
        alone = cells.loc[cells["seeds"] < 2, "label"].tolist()
        if alone:
            single.append(f"{fraction:g} ({'every arm' if len(alone) == len(cells) else ', '.join(alone)})")
    if single:
        notes.append(f"one seed only, so no seed spread measured, at fraction {'; '.join(single)}")
    sds = spread["sd"].dropna()
    if len(sds):
        notes.append(f"seed-to-seed SD of balanced accuracy: median {sds.median():.3f} (max {sds.max():.3f}); "
                     "differences between arms smaller than about twice that are not resolved")
    widths = [high - low for low, high in table["ci95_balanced_accuracy"] if low is not None and high is not None] \
        if "ci95_balanced_accuracy" in table else []
    if widths:
        notes.append(f"the test set alone gives each run's balanced accuracy a 95% interval of width ~{np.median(widths):.3f}")
    return notes


def typical_spread(spread: pd.DataFrame) -> float | None:
    """The median seed SD over (arm, size) cells with two or more seeds; None when there are none."""
    sds = spread["sd"].dropna()
    return float(sds.median()) if len(sds) else None


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
