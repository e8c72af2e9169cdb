"""The balanced decision: logit adjustment with tau fitted on validation, from the same probabilities as arg-max."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.evaluation.decision import (adjusted_decision, balanced_accuracy, balanced_decision_summary, class_priors,
                              fit_tau)
from helpers.reporting.results import _model_problems, balanced_decision_cell

CLASSES = ["mel", "nv", "df"]


def imbalanced_probs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels 80% class 1, and calibrated-looking probabilities that lean to the majority, as a trained model's do."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=[0.12, 0.8, 0.08])
    logits = rng.normal(0, 1, size=(n, 3)) + 1.2 * np.eye(3)[y] + np.log([0.12, 0.8, 0.08])
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, y


def test_tau_zero_is_argmax_and_a_positive_tau_moves_decisions_to_rare_classes() -> None:
    probs, y = imbalanced_probs(500, 0)
    priors = class_priors(y, 3)
    assert np.array_equal(adjusted_decision(probs, priors, 0.0), probs.argmax(1))
    adjusted = adjusted_decision(probs, priors, 1.0)
    assert (adjusted != 1).sum() > (probs.argmax(1) != 1).sum()


def test_fitted_tau_raises_test_balanced_accuracy_and_lowers_accuracy() -> None:
    val_probs, val_y = imbalanced_probs(800, 1)
    test_probs, test_y = imbalanced_probs(2000, 2)
    priors = class_priors(val_y, 3)
    tau = fit_tau(val_probs, val_y, priors)
    assert tau > 0
    argmax, adjusted = test_probs.argmax(1), adjusted_decision(test_probs, priors, tau)
    assert balanced_accuracy(test_y, adjusted) > balanced_accuracy(test_y, argmax) + 0.05
    assert (adjusted == test_y).mean() < (argmax == test_y).mean()


def test_fit_tau_picks_zero_when_adjusting_cannot_help() -> None:
    y = np.array([0, 1, 2] * 20)
    probs = np.eye(3)[y] * 0.9 + 0.1 / 3  # already perfect: every tau ties, the smallest wins
    assert fit_tau(probs, y, class_priors(y, 3)) == 0.0


def test_bad_inputs_name_the_problem() -> None:
    probs, y = imbalanced_probs(50, 3)
    with pytest.raises(ValueError, match="validation split is empty"):
        fit_tau(probs[:0], y[:0], class_priors(y, 3))
    with pytest.raises(ValueError, match="tau must be"):
        fit_tau(probs, y, class_priors(y, 3), taus=(0.0, -1.0))
    with pytest.raises(ValueError, match=r"probs must be \(N, 4\)"):
        adjusted_decision(probs, np.full(4, 0.25), 1.0)


def test_an_absent_training_class_keeps_a_finite_prior() -> None:
    priors = class_priors(np.array([0, 0, 1]), 3)
    assert np.all(np.isfinite(np.log(priors))) and priors[2] < priors[1] < priors[0]


def test_summary_follows_the_metrics_contract_and_fills_the_readme_cell() -> None:
    probs, y = imbalanced_probs(300, 4)
    groups = np.arange(len(y)) // 2  # two images per lesion
    decision = balanced_decision_summary(y, probs, class_priors(y, 3), 1.0, CLASSES, groups, n_boot=50)
    assert decision["tau"] == 1.0 and set(decision["per_class_recall"]) == set(CLASSES)
    low, high = decision["ci95"]["balanced_accuracy"]
    assert low <= decision["balanced_accuracy"] <= high
    entry = {"accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5, "macro_auc": 0.5, "n_test": 300,
             "per_class_recall": {"mel": 0.5}, "ci95": {k: [0.4, 0.6] for k in ("accuracy", "balanced_accuracy",
                                                                               "macro_f1", "macro_auc")},
             "balanced_decision": decision}
    assert _model_problems(entry) == []
    assert balanced_decision_cell(entry).startswith(f"{decision['accuracy']:.3f}, {decision['balanced_accuracy']:.3f} (")
    broken = {**entry, "balanced_decision": {**decision, "tau": -1}}
    assert any("balanced_decision: tau" in problem for problem in _model_problems(broken))
    assert balanced_decision_cell({**entry, "balanced_decision": None}) is None


def test_evaluate_split_reports_both_decisions_of_one_model(synthetic_dir, tmp_path) -> None:
    from helpers.data.dataset import load_split_data
    from helpers.evaluation.splits import comparison_table, evaluate_split
    from helpers.models import build_classifier

    data = load_split_data(synthetic_dir, 16, cache_dir=tmp_path, name="syn", progress=False, device="cpu")
    model = build_classifier("improved_cnn", data.classes, 16)
    evaluation = evaluate_split(model, data, n_boot=20)
    decision = evaluation.summary["balanced_decision"]
    assert decision["tau"] in [round(t, 2) for t in np.arange(0, 2.01, 0.1)]
    assert 0 <= decision["balanced_accuracy"] <= 1 and decision["rule"].startswith("logit adjustment")
    table = comparison_table({"untrained": evaluation})
    assert table.loc["untrained", "balanced decision: bal. acc."] == round(decision["balanced_accuracy"], 3)
    plain = evaluate_split(model, data, n_boot=20, balanced_decision=False)
    assert "balanced_decision" not in plain.summary and plain.summary["accuracy"] == evaluation.summary["accuracy"]
