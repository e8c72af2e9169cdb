"""Evaluate trained classifiers on a split: probabilities, contract metrics with lesion bootstrap CIs, comparison tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data.dataset import SplitData
from ..data.images import read_image
from .decision import balanced_decision_summary, class_priors, fit_tau
from .gradcam import classifier_cams
from ..training.inference import predict, predict_logits
from .metrics import (apply_temperature, expected_calibration_error, fit_temperature, metrics_summary,
                      threshold_for_sensitivity)
from ..models import load_checkpoint


@dataclass
class Evaluation:
    """One model on one split: true labels, probabilities, lesion ids and the metrics summary."""

    y_true: np.ndarray
    probs: np.ndarray
    groups: np.ndarray
    classes: list[str]
    summary: dict[str, Any]

    @property
    def y_pred(self) -> np.ndarray:
        """Predicted class indices (argmax)."""
        return self.probs.argmax(1)


def evaluate_split(model: nn.Module, data: SplitData, split: str = "test", tta: bool = False,
                   n_boot: int = 1000, seed: int = 0, balanced_decision: bool = True) -> Evaluation:
    """Predict a split and summarise it with the metrics-JSON fields (95% CIs resample lesions).

    With balanced_decision (multi-class only), the summary also holds "balanced_decision": the same
    probabilities decided by logit adjustment with tau fitted on the validation split (helpers.evaluation.decision).
    """
    evaluation = evaluation_of(data, predict(model, data.parts[split].images, tta=tta), split, n_boot, seed)
    if balanced_decision and len(data.classes) > 2 and split != "val" and len(data.val):
        val_probs = predict(model, data.val.images, tta=tta)
        evaluation.summary["balanced_decision"] = decide_balanced(data, val_probs, evaluation, n_boot, seed)
    return evaluation


def decide_balanced(data: SplitData, val_probs: np.ndarray, evaluation: Evaluation, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """The balanced decision's metrics on evaluation's split, tau fitted on the validation probabilities."""
    priors = class_priors(data.train.labels.cpu().numpy(), len(data.classes))
    tau = fit_tau(val_probs, data.val.labels.cpu().numpy(), priors)
    return balanced_decision_summary(evaluation.y_true, evaluation.probs, priors, tau, data.classes,
                                     evaluation.groups, n_boot=n_boot, seed=seed)


def evaluation_of(data: SplitData, probs: np.ndarray, split: str = "test", n_boot: int = 1000, seed: int = 0,
                  threshold: float = 0.5) -> Evaluation:
    """Summarise given class probabilities of a split's images (e.g. after temperature scaling; binary: at threshold)."""
    y_true = data.parts[split].labels.cpu().numpy()
    groups = data.rows(split)["lesion_id"].to_numpy()
    summary = metrics_summary(y_true, probs, data.classes, groups, n_boot=n_boot, seed=seed, threshold=threshold)
    return Evaluation(y_true, probs, groups, data.classes, summary)


def temperature_scaled(model: nn.Module, data: SplitData, split: str = "test", tta: bool = False) -> tuple[float, np.ndarray]:
    """The temperature fitted on the validation logits and the split's probabilities calibrated with it."""
    temperature = fit_temperature(predict_logits(model, data.val.images, tta=tta), data.val.labels)
    return temperature, apply_temperature(predict_logits(model, data.parts[split].images, tta=tta), temperature)


def evaluate_at_sensitivity(model: nn.Module, data: SplitData, target: float = 0.9, split: str = "test",
                            tta: bool = False, n_boot: int = 1000, seed: int = 0) -> tuple[float, Evaluation]:
    """A binary model's threshold for sensitivity >= target on the validation split, and split summarised at it.

    The threshold is the highest whose validation sensitivity reaches target (metrics.threshold_for_sensitivity);
    the split's sensitivity at it is measured, not promised.
    """
    if len(data.classes) != 2:
        raise ValueError(f"a sensitivity threshold needs a binary model; this data has {len(data.classes)} classes")
    val_p = predict(model, data.val.images, tta=tta)[:, 1]
    threshold = threshold_for_sensitivity(data.val.labels.cpu().numpy(), val_p, target)
    return threshold, evaluation_of(data, predict(model, data.parts[split].images, tta=tta), split, n_boot, seed,
                                    threshold)


def pick_cases(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], per_class: int = 1, seed: int = 0) -> pd.DataFrame:
    """Up to per_class right and per_class wrong predictions of every true class, drawn at random: index, true, pred, right."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, name in enumerate(classes):
        for right in (True, False):
            where = np.flatnonzero((y_true == label) & ((y_pred == label) == right))
            for i in rng.permutation(where)[:per_class]:
                rows.append({"index": int(i), "true": name, "pred": classes[y_pred[i]], "right": right})
    return pd.DataFrame(rows, columns=["index", "true", "pred", "right"])


def majority_baseline(data: SplitData, split: str = "test") -> dict[str, float]:
    """Accuracy and balanced accuracy of always answering the most common training class."""
    majority = int(np.bincount(data.train.labels.cpu().numpy()).argmax())
    y_true = data.parts[split].labels.cpu().numpy()
    present = np.unique(y_true)
    return {"accuracy": float((y_true == majority).mean()), "balanced_accuracy": 1.0 / len(present),
            "class": data.classes[majority]}


def comparison_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """One row per model: accuracy, balanced accuracy (with 95% CI), macro F1, macro AUC, n_test."""
    rows = {}
    for name, evaluation in evaluations.items():
        s = evaluation.summary
        low, high = s["ci95"]["balanced_accuracy"]
        rows[name] = {"accuracy": s["accuracy"], "balanced_accuracy": s["balanced_accuracy"],
                      "bal. acc. 95% CI": f"{low:.3f}–{high:.3f}", "macro_f1": s["macro_f1"],
                      "macro_auc": s["macro_auc"], "n_test": s["n_test"]}
        if "balanced_decision" in s:  # the same probabilities, decided for balanced accuracy (helpers.evaluation.decision)
            decision = s["balanced_decision"]
            rows[name].update({"balanced decision: accuracy": decision["accuracy"],
                               "balanced decision: bal. acc.": decision["balanced_accuracy"]})
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


def recall_table(evaluations: dict[str, Evaluation]) -> pd.DataFrame:
    """Per-class recall (rows: classes, columns: models)."""
    return pd.DataFrame({name: e.summary["per_class_recall"] for name, e in evaluations.items()}).round(3)


@dataclass
class Calibration:
    """One model's predictions on a split before and after temperature scaling, and the calibration error of each."""

    temperature: float
    raw: Evaluation
    calibrated: Evaluation
    ece_before: float
    ece_after: float


def calibrate(model: nn.Module, data: SplitData, split: str = "test", tta: bool = False, n_boot: int = 1000,
              seed: int = 0) -> Calibration:
    """Evaluate a split as predicted and after temperature scaling (T fitted on validation), with both ECEs."""
    raw = evaluate_split(model, data, split, tta=tta, n_boot=n_boot, seed=seed)
    temperature, probs = temperature_scaled(model, data, split, tta=tta)
    calibrated = evaluation_of(data, probs, split, n_boot=n_boot, seed=seed)
    return Calibration(temperature, raw, calibrated, expected_calibration_error(raw.y_true, raw.probs),
                       expected_calibration_error(calibrated.y_true, calibrated.probs))


@dataclass
class ImageExplanation:
    """One image through a saved checkpoint: the model, the image as it saw it, its probabilities and Grad-CAM map."""

    model: Any
    image: np.ndarray  # uint8 (size, size, 3), resized as the checkpoint's model expects
    temperature: float
    probabilities: pd.DataFrame  # per class: probability, calibrated probability
    cam: np.ndarray  # Grad-CAM map (size, size) of the predicted class
    warnings: list[str] = field(default_factory=list)  # why the image is unusable, if it is

    @property
    def predicted(self) -> str:
        """The predicted class (temperature scaling changes no prediction)."""
        return str(self.probabilities["calibrated probability"].idxmax())


def explain_image(checkpoint: str | Path, path: str | Path, calibration: Any) -> ImageExplanation:
    """Load checkpoint, predict the image at path, calibrate with T fitted on calibration.val, and Grad-CAM it."""
    model, _ = load_checkpoint(checkpoint)
    image, found = read_image(path, model.image_size, model.resize_policy)  # the reader helpers.predict uses
    temperature = fit_temperature(predict_logits(model, calibration.val.images), calibration.val.labels)
    logits = predict_logits(model, torch.from_numpy(np.array(image[None])))  # np.array: a writable copy
    table = pd.DataFrame({"probability": apply_temperature(logits, 1.0)[0],
                          "calibrated probability": apply_temperature(logits, temperature)[0]}, index=model.classes)
    return ImageExplanation(model, image, temperature, table, classifier_cams(model, image[None])[0], found)
