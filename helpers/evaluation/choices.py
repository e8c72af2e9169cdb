"""Every choice notebook 07 makes, made on the validation split only, then applied unchanged to any split.

`choose_on_validation` is the one function that chooses: each model's temperature, the ensemble's weight, each
system's balanced-decision tau and malignant threshold, the best system, the selective-prediction score and the
confidence thresholds of the coverage levels. It reads `splits["val"]` of each model and nothing else (a test hands
it models whose other splits raise when read). `system_probs`, `decisions` and `confidence_scores` then apply
those choices to the lesion-disjoint test or to an external test, which are only reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.labels import MALIGNANT_DX
from .decision import adjusted_decision, balanced_accuracy, fit_tau
from .metrics import apply_temperature, fit_temperature, threshold_for_sensitivity
from .selective import aurc, coverage_threshold

ENSEMBLE_WEIGHTS: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
SCORES = ("max_probability", "member_agreement")


@dataclass(frozen=True)
class SplitOutputs:
    """One model's logits on one split, with each image's label index, diagnosis and group (lesion or image id)."""

    logits: np.ndarray
    y_true: np.ndarray
    dx: np.ndarray
    groups: np.ndarray


@dataclass(frozen=True)
class ModelOutputs:
    """One trained model's outputs by split name ("val", "test", an external test's name)."""

    name: str
    classes: list[str]
    splits: Mapping[str, SplitOutputs]
    priors: np.ndarray  # the training split's class frequencies (helpers.evaluation.decision.class_priors)


@dataclass(frozen=True)
class Choices:
    """What validation fixed: temperatures, the ensemble, taus, thresholds, the best system and the coverage rule."""

    members: tuple[str, str]
    ensemble: str
    temperatures: dict[str, float]
    ensemble_weight: float  # the second member's weight in the average of the members' calibrated probabilities
    priors: list[float]
    taus: dict[str, float]
    malignant_thresholds: dict[str, float]
    target_sensitivity: float
    validation_balanced_accuracy: dict[str, float]
    best: str
    validation_aurc: dict[str, float]
    score: str
    coverage_thresholds: dict[str, float] = field(default_factory=dict)  # "0.8" -> confidence threshold

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the metrics JSON."""
        return {key: (list(value) if isinstance(value, tuple) else value) for key, value in self.__dict__.items()}


def malignant_probability(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """P(malignant): the probability of the class 'malignant', or the sum over mel, bcc and akiec."""
    columns = [i for i, c in enumerate(classes) if c in MALIGNANT_DX or c == "malignant"]
    if not columns:
        raise ValueError(f"classes {', '.join(classes)} name no malignant class")
    return np.asarray(probs)[:, columns].sum(1)


def choose_on_validation(models: Mapping[str, ModelOutputs], members: tuple[str, str], coverages: Sequence[float],
                         target_sensitivity: float = 0.9, ensemble: str = "ensemble") -> Choices:
    """Fit every choice on the validation split of models (members: the two multi-class models to ensemble; the
    balanced decision uses the first member's training priors)."""
    priors = np.asarray(models[members[0]].priors, dtype=np.float64)
    val = {name: model.splits["val"] for name, model in models.items()}
    temperatures = {name: fit_temperature(v.logits, v.y_true) for name, v in val.items()}
    first, second = (apply_temperature(val[m].logits, temperatures[m]) for m in members)
    y_val = val[members[0]].y_true
    weight = min(ENSEMBLE_WEIGHTS, key=lambda w: _nll((1 - w) * first + w * second, y_val))
    probs = {members[0]: first, members[1]: second, ensemble: (1 - weight) * first + weight * second}
    taus = {name: fit_tau(p, y_val, priors) for name, p in probs.items()}
    scores = {name: balanced_accuracy(y_val, adjusted_decision(p, priors, taus[name])) for name, p in probs.items()}
    best = max(scores, key=lambda name: (scores[name], name != ensemble))  # a tie goes to a member: simpler
    thresholds = {name: threshold_for_sensitivity(_malignant_truth(val[members[0]].dx), malignant_probability(
        p, models[members[0]].classes), target_sensitivity) for name, p in probs.items()}
    for name, model in models.items():
        if name not in members:  # e.g. the binary model: its own threshold
            p = apply_temperature(val[name].logits, temperatures[name])
            thresholds[name] = threshold_for_sensitivity(_malignant_truth(val[name].dx),
                                                         malignant_probability(p, model.classes), target_sensitivity)
    correct = adjusted_decision(probs[best], priors, taus[best]) == y_val
    confidence = _scores(probs[best], first, second)
    areas = {score: aurc(correct, confidence[score]) for score in SCORES}
    score = min(SCORES, key=lambda s: areas[s])
    return Choices(tuple(members), ensemble, temperatures, float(weight), [float(p) for p in priors], taus,
                   {k: float(v) for k, v in thresholds.items()}, float(target_sensitivity), scores, best, areas, score,
                   {f"{c:g}": coverage_threshold(confidence[score], c) for c in coverages})


def system_probs(models: Mapping[str, ModelOutputs], choices: Choices, split: str) -> dict[str, np.ndarray]:
    """Calibrated probabilities of every model and of the ensemble on split, with the validation choices."""
    probs = {name: apply_temperature(model.splits[split].logits, choices.temperatures[name])
             for name, model in models.items()}
    first, second = (probs[m] for m in choices.members)
    probs[choices.ensemble] = (1 - choices.ensemble_weight) * first + choices.ensemble_weight * second
    return probs


def decisions(probs: np.ndarray, choices: Choices, system: str) -> np.ndarray:
    """The balanced decision (logit adjustment with the system's validation tau) of each row."""
    return adjusted_decision(probs, np.asarray(choices.priors), choices.taus[system])


def confidence_scores(probs: Mapping[str, np.ndarray], choices: Choices, system: str | None = None) -> dict[str, np.ndarray]:
    """Each selective-prediction score of system (default: the best) from the calibrated probabilities of probs."""
    first, second = (probs[m] for m in choices.members)
    return _scores(probs[system or choices.best], first, second)


def _scores(probs: np.ndarray, first: np.ndarray, second: np.ndarray) -> dict[str, np.ndarray]:
    """max_probability: the top calibrated probability; member_agreement: 1 - the members' total-variation distance."""
    return {"max_probability": probs.max(1), "member_agreement": 1.0 - 0.5 * np.abs(first - second).sum(1)}


def _nll(probs: np.ndarray, y_true: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, None)).mean())


def _malignant_truth(dx: np.ndarray) -> np.ndarray:
    return np.isin(np.asarray(dx, dtype=str), list(MALIGNANT_DX)).astype(np.int64)
