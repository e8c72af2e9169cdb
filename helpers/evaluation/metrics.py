"""Honest evaluation metrics: balanced scores, calibration, temperature scaling and lesion-level bootstrap intervals.

Conventions: `y_true` holds class indices (N,), `probs` class probabilities (N, C) whose columns follow
`classes`. Binary tasks have two columns and column 1 is the positive class ("malignant"); their predictions
are `p_positive >= threshold`, the same rule as sklearn's roc_curve, so the per-class recall of the positive
class equals the sensitivity. Multi-class predictions are the argmax.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn import metrics as skm

DEFAULT_CI_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
BINARY_CI_METRICS: tuple[str, ...] = ("auc", "sensitivity", "specificity")


def predicted_labels(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Predicted class indices: argmax, or `probs[:, 1] >= threshold` for two classes."""
    probs = np.asarray(probs)
    if probs.shape[1] == 2:
        return (probs[:, 1] >= threshold).astype(np.int64)
    return probs.argmax(axis=1)


def classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str], threshold: float = 0.5
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro F1, macro OvR AUC, per-class recall; two classes add AUC, sensitivity, specificity."""
    y_true, probs = _check_inputs(y_true, probs, classes)
    y_pred = predicted_labels(probs, threshold)
    labels = np.arange(len(classes))
    with warnings.catch_warnings():  # undefined values are reported as NaN on purpose
        warnings.simplefilter("ignore", UserWarning)
        recall = skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
        result: dict[str, Any] = {
            "accuracy": float(skm.accuracy_score(y_true, y_pred)),
            "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
            "macro_f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "macro_auc": macro_auc(y_true, probs),
            "per_class_recall": {name: float(r) for name, r in zip(classes, recall)},
            "n_test": int(len(y_true)),
        }
    if len(classes) == 2:
        sensitivity, specificity = sensitivity_specificity(y_true, probs[:, 1], threshold)
        result.update(auc=_binary_auc(y_true, probs[:, 1]), sensitivity=sensitivity, specificity=specificity)
    return result


def macro_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC over the classes present in y_true; NaN when fewer than two are present."""
    present = np.unique(y_true)
    if len(present) < 2:
        return math.nan
    return float(np.mean([skm.roc_auc_score(y_true == c, probs[:, c]) for c in present]))


def classification_report_table(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support with macro and weighted averages (sklearn's classification_report)."""
    report = skm.classification_report(
        y_true, y_pred, labels=np.arange(len(classes)), target_names=list(classes), output_dict=True, zero_division=0
    )
    table = pd.DataFrame(report).T.drop(index=["accuracy", "micro avg"], errors="ignore")
    return table.astype({"support": int})


def sensitivity_specificity(y_true: np.ndarray, p_positive: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """Sensitivity (recall of class 1) and specificity (recall of class 0) of `p_positive >= threshold`."""
    y_true = np.asarray(y_true).astype(bool)
    positive = np.asarray(p_positive) >= threshold
    sensitivity = positive[y_true].mean() if y_true.any() else math.nan
    specificity = (~positive[~y_true]).mean() if (~y_true).any() else math.nan
    return float(sensitivity), float(specificity)


def threshold_for_sensitivity(y_true: np.ndarray, p_positive: np.ndarray, target: float = 0.9) -> float:
    """The highest threshold whose sensitivity is at least `target` (so specificity is as high as it can be)."""
    y_true = np.asarray(y_true).astype(bool)
    if not y_true.any():
        raise ValueError("threshold_for_sensitivity needs at least one positive example")
    _, tpr, thresholds = skm.roc_curve(y_true, p_positive, drop_intermediate=False)
    return float(thresholds[np.argmax(tpr >= target)])  # thresholds decrease, tpr increases


def reliability_table(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """Top-label confidence vs accuracy in equal-width bins (lower, upper]; empty bins have NaN and count 0."""
    probs = np.asarray(probs)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, confidence, minlength=n_bins) / count
        accuracy = np.bincount(bins, correct, minlength=n_bins) / count
    return pd.DataFrame({
        "bin": np.arange(n_bins), "lower": edges[:-1], "upper": edges[1:],
        "confidence": mean_confidence, "accuracy": accuracy, "count": count,
    })


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, n_bins: int = 15) -> float:
    """Top-label expected calibration error with equal-width confidence bins."""
    table = reliability_table(y_true, probs, n_bins)
    gap = (table["accuracy"] - table["confidence"]).abs().fillna(0.0)
    return float((gap * table["count"]).sum() / table["count"].sum())


def fit_temperature(logits: np.ndarray | torch.Tensor, y_true: np.ndarray | torch.Tensor) -> float:
    """The temperature T in [0.01, 100] that minimises the NLL of softmax(logits / T) (fit on validation logits)."""
    logits = _numpy(logits).astype(np.float64)
    y_true = _numpy(y_true).astype(np.int64).ravel()

    def nll(log_t: float) -> float:
        return -float(log_softmax(logits / np.exp(log_t), axis=1)[np.arange(len(y_true)), y_true].mean())

    # Searching log T keeps T positive; the bounds matter when validation is all right and the NLL falls as T -> 0.
    result = minimize_scalar(nll, bounds=(math.log(1e-2), math.log(1e2)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def apply_temperature(logits: np.ndarray | torch.Tensor, temperature: float) -> np.ndarray:
    """Calibrated probabilities softmax(logits / temperature) as a numpy array."""
    return softmax(_numpy(logits).astype(np.float64) / temperature, axis=1)


def bootstrap_ci(
    y_true: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray,
    metrics: Sequence[str] = DEFAULT_CI_METRICS,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    classes: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals from resampling lesions (`groups`) with replacement; each drawn lesion brings all its images.

    Metric names: accuracy, balanced_accuracy, macro_f1, macro_auc, auc, sensitivity, specificity (binary) and
    recall_<class name> when `classes` is given. Resamples where a metric is undefined are skipped for that metric.
    """
    y_true, probs = _check_inputs(y_true, probs, classes)
    groups = np.asarray(groups)
    if not len(y_true):
        raise ValueError("bootstrap_ci needs at least one example")
    if groups.shape != y_true.shape:
        raise ValueError(f"groups has shape {groups.shape}, expected {y_true.shape}")
    _, lesion = np.unique(groups, return_inverse=True)
    n_lesions = int(lesion.max()) + 1
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // len(y_true))  # bounds the (resamples, images) weight matrix in memory
    values: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    for start in range(0, n_boot, chunk):
        draws = rng.integers(0, n_lesions, size=(min(chunk, n_boot - start), n_lesions))
        offsets = np.arange(len(draws))[:, None] * n_lesions
        lesion_counts = np.bincount((draws + offsets).ravel(), minlength=draws.size).reshape(draws.shape)
        weights = lesion_counts[:, lesion].astype(np.float64)
        for name, value in _weighted_metrics(y_true, probs, weights, metrics, classes, threshold).items():
            values[name].append(value)
    alpha = (1.0 - level) / 2.0
    intervals = {}
    for name, parts in values.items():
        finite = np.concatenate(parts)
        finite = finite[np.isfinite(finite)]
        low, high = np.quantile(finite, [alpha, 1.0 - alpha]) if len(finite) else (math.nan, math.nan)
        intervals[name] = (float(low), float(high))
    return intervals


def metrics_summary(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    groups: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """One model's entry of the metrics JSON: point metrics, lesion-bootstrap ci95 and n_test (JSON-ready, NaN as None)."""
    point = classification_metrics(y_true, probs, classes, threshold)
    names = DEFAULT_CI_METRICS + (BINARY_CI_METRICS if len(classes) == 2 else ())
    ci = bootstrap_ci(y_true, probs, groups, names, n_boot=n_boot, level=0.95, seed=seed, threshold=threshold)
    summary = {key: point[key] for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "per_class_recall")}
    if len(classes) == 2:
        summary.update({key: point[key] for key in ("sensitivity", "specificity", "auc")}, threshold=threshold)
    summary.update(ci95={name: list(interval) for name, interval in ci.items()}, n_test=point["n_test"])
    return _jsonable(summary)


def _weighted_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    weights: np.ndarray,
    names: Sequence[str],
    classes: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> dict[str, np.ndarray]:
    """Metrics of every row of `weights` (B, N) of image counts at once; NaN where a metric is undefined."""
    n_classes = probs.shape[1]
    cells = y_true * n_classes + predicted_labels(probs, threshold)
    confusion = (weights @ np.eye(n_classes * n_classes)[cells]).reshape(-1, n_classes, n_classes)  # [resample, true, pred]
    hits = np.diagonal(confusion, axis1=1, axis2=2)
    support, predicted = confusion.sum(axis=2), confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits / support
        f1 = np.where(support + predicted > 0, 2 * hits / (support + predicted), np.nan)
    computed: dict[str, Any] = {
        "accuracy": lambda: hits.sum(axis=1) / support.sum(axis=1),
        "balanced_accuracy": lambda: _nanmean(recall),
        "macro_f1": lambda: _nanmean(f1),  # labels in y_true or y_pred, as sklearn's f1_score
        "macro_auc": lambda: _macro_auc_weighted(y_true, probs, weights),
        "auc": lambda: _auc_weighted(y_true == 1, probs[:, 1], weights),
        "sensitivity": lambda: recall[:, 1],
        "specificity": lambda: recall[:, 0],
    }
    for i, name in enumerate(classes or ()):
        computed[f"recall_{name}"] = lambda i=i: recall[:, i]
    allowed = set(computed) - (set() if n_classes == 2 else set(BINARY_CI_METRICS))
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"unknown metrics {unknown} for {n_classes} classes; choose from {sorted(allowed)}")
    return {name: computed[name]() for name in names}


def _macro_auc_weighted(y_true: np.ndarray, probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest AUC per resample over the classes present in it (NaN when fewer than two)."""
    aucs = np.stack([_auc_weighted(y_true == c, probs[:, c], weights) for c in range(probs.shape[1])], axis=1)
    present = np.stack([weights[:, y_true == c].sum(axis=1) > 0 for c in range(probs.shape[1])], axis=1)
    return np.where(present.sum(axis=1) >= 2, _nanmean(aucs), np.nan)


def _auc_weighted(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per row of `weights`: the weighted Mann-Whitney statistic, ties counting one half."""
    order = np.argsort(score, kind="stable")
    sorted_score, positive = score[order], positive[order]
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_score) != 0])  # one block per distinct score
    w = weights[:, order]
    pos = np.add.reduceat(w * positive, starts, axis=1)
    neg = np.add.reduceat(w * ~positive, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / pairs, np.nan)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Row means ignoring NaN; NaN (without a warning) for rows that are all NaN."""
    counts = np.isfinite(values).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.nansum(values, axis=1) / counts, np.nan)


def _check_inputs(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray]:
    y_true, probs = np.asarray(y_true).astype(np.int64).ravel(), np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(y_true):
        raise ValueError(f"probs must have shape (N, C) with N = {len(y_true)}, got {probs.shape}")
    if classes is not None and len(classes) != probs.shape[1]:
        raise ValueError(f"{len(classes)} class names for {probs.shape[1]} probability columns")
    if len(y_true) and (y_true.min() < 0 or y_true.max() >= probs.shape[1]):
        raise ValueError(f"y_true must hold class indices in [0, {probs.shape[1]})")
    return y_true, probs


def _numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def _binary_auc(y_true: np.ndarray, p_positive: np.ndarray) -> float:
    return float(skm.roc_auc_score(y_true, p_positive)) if len(np.unique(y_true)) == 2 else math.nan


def _jsonable(value: Any) -> Any:
    """Plain Python types for json.dumps: numpy scalars to numbers, tuples to lists, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    return value
