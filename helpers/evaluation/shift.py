"""How a model's numbers move from the lesion-disjoint test to an external test, with the choices validation fixed.

Every function here takes a `Choices` (helpers.evaluation.choices) and only reports: the summaries (95% intervals
resample the groups: lesions internally, images externally), the operating points, the calibration and the
selective-prediction results of each system on a split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from .choices import Choices, ModelOutputs, confidence_scores, decisions, malignant_probability, system_probs
from ..data.labels import MALIGNANT_DX
from .decision import balanced_accuracy, balanced_decision_summary
from .metrics import apply_temperature, expected_calibration_error, metrics_summary, sensitivity_specificity
from .selective import aurc, risk_coverage, selective_summary

def split_summaries(models: Mapping[str, ModelOutputs], choices: Choices, split: str, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, dict[str, Any]]:
    """Each system's metrics summary on split: the multi-class systems as predicted (argmax of the calibrated
    probabilities) with the balanced decision beside; a binary model at its validation malignant threshold."""
    out = {}
    for system, p in system_probs(models, choices, split).items():
        model = models.get(system, models[choices.members[0]])  # the ensemble's images and labels are its members'
        outputs = model.splits[split]
        if len(model.classes) == 2:
            out[system] = metrics_summary(outputs.y_true, p, model.classes, outputs.groups, n_boot=n_boot, seed=seed,
                                          threshold=choices.malignant_thresholds[system])
            continue
        out[system] = metrics_summary(outputs.y_true, p, model.classes, outputs.groups, n_boot=n_boot, seed=seed)
        out[system]["balanced_decision"] = balanced_decision_summary(outputs.y_true, p, np.asarray(choices.priors),
                                                                     choices.taus[system], model.classes,
                                                                     outputs.groups, n_boot=n_boot, seed=seed)
    return out


def side_by_side(summaries: Mapping[str, Mapping[str, dict[str, Any]]], internal: str, external: str | None,
                 metrics: Sequence[str] = ("accuracy", "balanced_accuracy", "macro_auc")) -> pd.DataFrame:
    """One row per system: each metric on the internal and the external split (with 95% intervals) and the drop
    (internal minus external); the internal columns only when there is no external split."""
    splits = [internal] + ([external] if external else [])
    rows = {}
    for system in summaries[internal]:
        row = {}
        for metric in metrics:
            if summaries[internal][system].get(metric) is None:
                continue
            for split in splits:
                s = summaries[split][system]
                low, high = s["ci95"].get(metric, (None, None))
                row[f"{metric} · {split}"] = f"{s[metric]:.3f} ({low:.3f}–{high:.3f})" if low is not None else f"{s[metric]:.3f}"
            if external:
                row[f"{metric} drop"] = round(summaries[internal][system][metric] - summaries[external][system][metric], 3)
        rows[system] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def operating_points(models: Mapping[str, ModelOutputs], choices: Choices, splits: Sequence[str]) -> pd.DataFrame:
    """Per system and split: the AUC of the malignant probability (benign against malignant, whatever the system's
    classes), the malignant threshold fitted on validation and the sensitivity and specificity it gets, and for
    multi-class systems the balanced decision's balanced accuracy and melanoma recall."""
    rows = []
    for split in splits:
        probs = system_probs(models, choices, split)
        for system, p in probs.items():
            model = models.get(system, models[choices.members[0]])
            outputs = model.splits[split]
            truth = np.isin(outputs.dx, list(MALIGNANT_DX))
            threshold, malignant = choices.malignant_thresholds[system], malignant_probability(p, model.classes)
            sensitivity, specificity = sensitivity_specificity(truth, malignant, threshold)
            auc = roc_auc_score(truth, malignant) if 0 < truth.sum() < len(truth) else None
            row = {"system": system, "split": split, "malignant AUC": None if auc is None else round(float(auc), 3),
                   "malignant threshold": round(threshold, 4),
                   "sensitivity": round(sensitivity, 3), "specificity": round(specificity, 3)}
            if len(model.classes) > 2:
                decided = decisions(p, choices, system)
                mel = outputs.y_true == model.classes.index("mel")
                row.update({"balanced decision: bal. acc.": round(balanced_accuracy(outputs.y_true, decided), 3),
                    "balanced decision: mel recall": round(float((decided[mel] == model.classes.index("mel")).mean()), 3)
                    if mel.any() else None})
            rows.append(row)
    return pd.DataFrame(rows).set_index(["system", "split"])


def calibration_table(models: Mapping[str, ModelOutputs], choices: Choices, splits: Sequence[str]) -> pd.DataFrame:
    """Per model and split: the expected calibration error as predicted and after the validation temperature."""
    rows = []
    for name, model in models.items():
        for split in splits:
            outputs = model.splits[split]
            rows.append({"model": name, "split": split, "temperature": round(choices.temperatures[name], 3),
                         "ECE before": round(expected_calibration_error(outputs.y_true, apply_temperature(outputs.logits, 1.0)), 4),
                         "ECE after": round(expected_calibration_error(outputs.y_true, apply_temperature(
                             outputs.logits, choices.temperatures[name])), 4)})
    return pd.DataFrame(rows).set_index(["model", "split"])


def selective_results(models: Mapping[str, ModelOutputs], choices: Choices, split: str) -> dict[str, Any]:
    """On split, for the best system's balanced decision: each score's AURC and risk–coverage curve, and what each
    validation coverage threshold (of the chosen score) keeps and sets aside."""
    probs = system_probs(models, choices, split)
    reference = models[choices.members[0]]
    y_true = reference.splits[split].y_true
    decided = decisions(probs[choices.best], choices, choices.best)
    correct = decided == y_true
    scores = confidence_scores(probs, choices)
    curves = {score: risk_coverage(correct, values) for score, values in scores.items()}
    at = {coverage: selective_summary(y_true, decided, scores[choices.score], threshold, reference.classes)
          for coverage, threshold in choices.coverage_thresholds.items()}
    full = selective_summary(y_true, decided, np.ones(len(y_true)), 0.0, reference.classes)
    return {"system": choices.best, "score": choices.score, "aurc": {s: aurc(correct, v) for s, v in scores.items()},
            "full_coverage": full, "at_coverage": at, "curves": curves}


def selective_table(results: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (split, coverage level): coverage reached, balanced accuracy, melanoma sensitivity, cases set aside."""
    rows = []
    for split, result in results.items():
        for level, s in [("all", result["full_coverage"]), *result["at_coverage"].items()]:
            rows.append({"split": split, "coverage level (validation)": level, "coverage reached": round(s["coverage"], 3),
                         "balanced accuracy": None if s["balanced_accuracy"] is None else round(s["balanced_accuracy"], 3),
                         "mel sensitivity": None if s["mel_sensitivity"] is None else round(s["mel_sensitivity"], 3),
                         "set aside": s["n_set_aside"], "melanomas set aside": s["mel_set_aside"]})
    return pd.DataFrame(rows).set_index(["split", "coverage level (validation)"])


def set_aside_mix(results: Mapping[str, Mapping[str, Any]], coverage: str) -> pd.DataFrame:
    """The class mix of all cases and of those set aside at coverage, per split (rows: classes)."""
    columns = {}
    for split, result in results.items():
        summary = result["at_coverage"][coverage]
        columns[f"{split}: all"] = summary["all_mix"]
        columns[f"{split}: set aside"] = summary["set_aside_mix"]
    return pd.DataFrame(columns)


def jsonable_selective(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The selective results without their curves, for the metrics JSON."""
    return {split: {key: value for key, value in result.items() if key != "curves"} for split, result in results.items()}


def goals(summaries: Mapping[str, Mapping[str, dict[str, Any]]], choices: Choices, selective: Mapping[str, Any],
          internal: str, external: str | None) -> dict[str, dict[str, Any]]:
    """Notebook 07's goals for the system chosen on validation (its balanced decision), each with value, target, met.

    External balanced accuracy >= 0.65 and macro AUC >= 0.92; at the first coverage level its external balanced
    accuracy at least its internal one at full coverage. Empty without an external split.
    """
    if external is None:
        return {}
    best = summaries[external][choices.best]
    level = next(iter(selective[external]["at_coverage"]))
    kept = selective[external]["at_coverage"][level]["balanced_accuracy"]
    full = selective[internal]["full_coverage"]["balanced_accuracy"]
    rows = {f"{external} balanced accuracy >= 0.65": (best["balanced_decision"]["balanced_accuracy"], 0.65),
            f"{external} macro AUC >= 0.92": (best["macro_auc"], 0.92),
            f"{external} balanced accuracy at coverage {level} >= internal at full coverage": (kept, full)}
    return {name: {"value": value, "target": target, "met": value is not None and value >= target}
            for name, (value, target) in rows.items()}
