"""The decision is not the model: from one model's class probabilities, the accuracy-optimal and a balanced decision.

Arg-max of the probabilities maximises expected accuracy, which on HAM10000 favours the majority class
(nevi). Logit adjustment (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021) instead predicts
argmax_k [log p_k(x) - tau * log prior_k], where prior is the training class frequency: tau = 1 is the
Bayes-optimal rule for balanced accuracy when the probabilities are calibrated. We fit the one parameter tau
on the validation split (the value with the best validation balanced accuracy), so the test split is never
used to choose it. Both decisions come from the same probabilities: the gap between them is a choice of
operating point, not a better model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import metrics_summary
from ..core.validate import check_number

TAUS: tuple[float, ...] = tuple(np.round(np.arange(0.0, 2.01, 0.1), 2))


def class_priors(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Training class frequencies, with a floor so that a class absent from training keeps a finite log prior."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    counts = np.maximum(counts, 0.5)
    return counts / counts.sum()


def adjusted_decision(probs: np.ndarray, priors: np.ndarray, tau: float) -> np.ndarray:
    """Predicted class per row: argmax of log(probs) - tau * log(priors)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(priors):
        raise ValueError(f"probs must be (N, {len(priors)}) for {len(priors)} priors; got {probs.shape}")
    return (np.log(np.clip(probs, 1e-12, None)) - tau * np.log(priors)[None, :]).argmax(1)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in y_true."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in np.unique(y_true)]))


def fit_tau(val_probs: np.ndarray, val_labels: np.ndarray, priors: np.ndarray,
            taus: Sequence[float] = TAUS) -> float:
    """The tau whose adjusted decision has the best validation balanced accuracy (the smallest such tau on ties)."""
    if len(val_labels) == 0:
        raise ValueError("fit_tau needs validation images: the validation split is empty")
    for tau in taus:
        check_number("tau", tau, minimum=0.0)
    scores = [balanced_accuracy(val_labels, adjusted_decision(val_probs, priors, tau)) for tau in taus]
    return float(taus[int(np.argmax(scores))])


def balanced_decision_summary(y_true: np.ndarray, probs: np.ndarray, priors: np.ndarray, tau: float,
                              classes: Sequence[str], groups: np.ndarray, n_boot: int = 1000,
                              seed: int = 0) -> dict[str, Any]:
    """Accuracy, balanced accuracy (with its lesion-bootstrap 95% CI) and per-class recall of the adjusted decision."""
    decided = np.eye(len(classes))[adjusted_decision(probs, priors, tau)]  # one-hot: its argmax is the decision
    summary = metrics_summary(np.asarray(y_true), decided, classes, groups, n_boot=n_boot, seed=seed)
    return {"rule": "logit adjustment, tau fitted on validation", "tau": float(tau),
            "accuracy": summary["accuracy"], "balanced_accuracy": summary["balanced_accuracy"],
            "per_class_recall": summary["per_class_recall"],
            "ci95": {"balanced_accuracy": summary["ci95"]["balanced_accuracy"]}}
