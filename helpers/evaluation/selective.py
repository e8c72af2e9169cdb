"""Selective prediction: a model that may set a case aside ("I don't know") and how its risk falls with coverage.

A confidence score ranks the cases; keeping the most confident fraction c of them (the coverage) leaves a risk,
the error rate of the kept cases. The risk–coverage curve and its area (AURC; Geifman & El-Yaniv, "Selective
classification for deep neural networks", NeurIPS 2017) compare scores: the lower, the better the score sorts
errors last. A coverage level is turned into a confidence threshold on the validation split, so on another split
the coverage it gets is measured, not promised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .decision import balanced_accuracy


def risk_coverage(correct: np.ndarray, confidence: np.ndarray) -> pd.DataFrame:
    """Coverage k/n and risk (error rate of the k most confident cases) for k = 1..n; ties broken by input order."""
    correct, confidence = np.asarray(correct, dtype=bool), np.asarray(confidence, dtype=np.float64)
    if correct.shape != confidence.shape or correct.ndim != 1 or not len(correct):
        raise ValueError(f"correct and confidence must be equal-length non-empty vectors; got {correct.shape} "
                         f"and {confidence.shape}")
    order = np.argsort(-confidence, kind="stable")
    kept = np.arange(1, len(order) + 1)
    return pd.DataFrame({"coverage": kept / len(order), "risk": np.cumsum(~correct[order]) / kept})


def aurc(correct: np.ndarray, confidence: np.ndarray) -> float:
    """Area under the risk–coverage curve: the mean risk over every coverage k/n."""
    return float(risk_coverage(correct, confidence)["risk"].mean())


def coverage_threshold(confidence: np.ndarray, coverage: float) -> float:
    """The confidence at or above which a fraction `coverage` of these (validation) cases lies."""
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1]; got {coverage}")
    confidence = np.sort(np.asarray(confidence, dtype=np.float64))[::-1]
    if not len(confidence):
        raise ValueError("coverage_threshold needs at least one validation case")
    return float(confidence[max(0, int(np.ceil(coverage * len(confidence))) - 1)])


def selective_summary(y_true: np.ndarray, y_pred: np.ndarray, confidence: np.ndarray, threshold: float,
                      classes: Sequence[str], focus: str = "mel") -> dict[str, Any]:
    """What keeping the cases with confidence >= threshold gives: coverage, balanced accuracy and the focus class's
    sensitivity on the kept cases, and the class mix of the cases set aside (and, for comparison, of all cases)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    kept = np.asarray(confidence) >= threshold
    focus_index = list(classes).index(focus) if focus in classes else None
    kept_focus = kept & (y_true == focus_index) if focus_index is not None else np.zeros_like(kept)
    aside = np.bincount(y_true[~kept], minlength=len(classes))
    every = np.bincount(y_true, minlength=len(classes))
    return {"threshold": float(threshold), "coverage": float(kept.mean()), "n_kept": int(kept.sum()),
            "n_set_aside": int((~kept).sum()),
            "balanced_accuracy": balanced_accuracy(y_true[kept], y_pred[kept]) if kept.any() else None,
            "accuracy": float((y_true[kept] == y_pred[kept]).mean()) if kept.any() else None,
            f"{focus}_sensitivity": float((y_pred[kept_focus] == focus_index).mean()) if kept_focus.any() else None,
            f"{focus}_set_aside": int(aside[focus_index]) if focus_index is not None else 0,
            "set_aside_mix": {c: round(float(aside[i] / max(aside.sum(), 1)), 4) for i, c in enumerate(classes)},
            "all_mix": {c: round(float(every[i] / every.sum()), 4) for i, c in enumerate(classes)}}
