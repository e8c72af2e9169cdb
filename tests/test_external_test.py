"""Notebook 07's library: choices fitted on validation only, selective prediction, the tables, the external set."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.course.external_test import checkpoint_problem, load_external
from helpers.data.labels import DX_CLASSES
from helpers.evaluation.choices import (ModelOutputs, SplitOutputs, choose_on_validation, malignant_probability,
                                        system_probs)
from helpers.evaluation.selective import aurc, coverage_threshold, risk_coverage, selective_summary
from helpers.evaluation.shift import goals, selective_results, side_by_side, split_summaries

CLASSES = list(DX_CLASSES)
SPLITS = {"val": (300, 1.0), "test": (400, 1.0), "external": (350, 1.8)}


def _split(rng: np.random.Generator, n: int, noise: float, y: np.ndarray | None = None) -> SplitOutputs:
    y = rng.integers(0, len(CLASSES), n) if y is None else y
    logits = rng.normal(0, noise, (n, len(CLASSES)))
    logits[np.arange(n), y] += 2.0
    return SplitOutputs(logits, y, np.array(CLASSES)[y], np.arange(n).astype(str))


def _models(seed: int = 0) -> dict[str, ModelOutputs]:
    rng = np.random.default_rng(seed)
    truth = {split: rng.integers(0, len(CLASSES), n) for split, (n, _) in SPLITS.items()}
    priors = np.full(len(CLASSES), 1 / len(CLASSES))
    models = {name: ModelOutputs(name, CLASSES, {split: _split(rng, n, noise, truth[split])
                                                 for split, (n, noise) in SPLITS.items()}, priors)
              for name in ("a", "b")}
    binary = {}
    for split, y in truth.items():
        malignant = np.isin(np.array(CLASSES)[y], ["mel", "bcc", "akiec"]).astype(np.int64)
        logits = np.stack([np.zeros(len(y)), 2.0 * malignant - 1 + rng.normal(0, 1, len(y))], 1)
        binary[split] = SplitOutputs(logits, malignant, np.array(CLASSES)[y], np.arange(len(y)).astype(str))
    models["bin"] = ModelOutputs("bin", ["benign", "malignant"], binary, np.array([0.5, 0.5]))
    return models


class ValidationOnly(Mapping):
    """A model's splits where any split but validation raises when read."""

    def __init__(self, splits: Mapping[str, SplitOutputs]) -> None:
        self._splits = dict(splits)

    def __getitem__(self, key: str) -> SplitOutputs:
        if key != "val":
            raise AssertionError(f"the choosing code read the {key!r} split")
        return self._splits[key]

    def __iter__(self):
        return iter(["val"])

    def __len__(self) -> int:
        return 1


def _choose(models: Mapping[str, ModelOutputs]):
    return choose_on_validation(models, ("a", "b"), [0.8, 0.9], 0.9)


def test_the_choosing_code_reads_only_the_validation_split() -> None:
    models = _models()
    guarded = {name: ModelOutputs(m.name, m.classes, ValidationOnly(m.splits), m.priors) for name, m in models.items()}
    assert _choose(guarded) == _choose(models)


def test_choices_follow_validation_and_not_test_or_the_external_set() -> None:
    models, chosen = _models(), _choose(_models())
    rng = np.random.default_rng(5)
    other_tests = {name: ModelOutputs(m.name, m.classes, {**m.splits, "test": _split(rng, 400, 3.0),
                                                          "external": _split(rng, 350, 3.0)}, m.priors)
                   for name, m in models.items()}
    assert _choose(other_tests) == chosen
    other_val = {name: ModelOutputs(m.name, m.classes, {**m.splits, "val": _split(rng, 300, 2.0) if name != "bin"
                                                        else m.splits["val"]}, m.priors)
                 for name, m in models.items()}
    changed = _choose(other_val)
    assert changed.temperatures != chosen.temperatures
    assert changed.coverage_thresholds != chosen.coverage_thresholds


def test_the_ensemble_weight_is_the_validation_log_loss_minimum() -> None:
    models = _models()
    rng = np.random.default_rng(1)
    noisy = ModelOutputs("b", CLASSES, {s: _split(rng, len(o.y_true), 6.0, o.y_true) for s, o in models["b"].splits.items()},
                         models["b"].priors)
    assert _choose({**models, "b": noisy}).ensemble_weight < 0.5  # the weaker member gets the smaller weight
    probs = system_probs(models, _choose(models), "test")
    w = _choose(models).ensemble_weight
    np.testing.assert_allclose(probs["ensemble"], (1 - w) * probs["a"] + w * probs["b"])


def test_malignant_probability_sums_mel_bcc_and_akiec() -> None:
    probs = np.eye(len(CLASSES))
    expected = np.isin(CLASSES, ["mel", "bcc", "akiec"]).astype(float)
    np.testing.assert_allclose(malignant_probability(probs, CLASSES), expected)
    assert malignant_probability(np.array([[0.3, 0.7]]), ["benign", "malignant"])[0] == pytest.approx(0.7)


def test_risk_coverage_and_aurc_by_hand() -> None:
    correct = np.array([True, False, True, True])
    confidence = np.array([0.9, 0.8, 0.7, 0.1])
    curve = risk_coverage(correct, confidence)
    np.testing.assert_allclose(curve["risk"], [0, 1 / 2, 1 / 3, 1 / 4])
    assert aurc(correct, confidence) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 4) / 4)
    assert aurc(correct, -confidence) > aurc(np.array([True, True, True, False]), confidence)


def test_coverage_threshold_keeps_the_share_asked_for_on_validation() -> None:
    confidence = np.linspace(0, 1, 101)
    threshold = coverage_threshold(confidence, 0.8)
    assert (confidence >= threshold).mean() == pytest.approx(81 / 101)
    with pytest.raises(ValueError, match="coverage"):
        coverage_threshold(confidence, 1.5)


def test_selective_summary_counts_what_is_set_aside() -> None:
    y_true = np.array([4, 4, 5, 0])  # mel, mel, nv, akiec
    y_pred = np.array([4, 5, 5, 0])
    summary = selective_summary(y_true, y_pred, np.array([0.9, 0.2, 0.8, 0.7]), 0.5, CLASSES)
    assert (summary["n_kept"], summary["n_set_aside"], summary["mel_set_aside"]) == (3, 1, 1)
    assert summary["mel_sensitivity"] == 1.0 and summary["balanced_accuracy"] == 1.0
    assert summary["set_aside_mix"]["mel"] == 1.0


def test_the_tables_and_goals_report_each_split() -> None:
    models = _models()
    choices = _choose(models)
    summaries = {split: split_summaries(models, choices, split, n_boot=20) for split in ("test", "external")}
    assert summaries["external"]["bin"]["threshold"] == pytest.approx(choices.malignant_thresholds["bin"])
    table = side_by_side(summaries, "test", "external")
    drop = summaries["test"]["a"]["balanced_accuracy"] - summaries["external"]["a"]["balanced_accuracy"]
    assert table.loc["a", "balanced_accuracy drop"] == pytest.approx(round(drop, 3))
    assert "balanced_accuracy drop" not in side_by_side(summaries, "test", None).columns
    selective = {split: selective_results(models, choices, split) for split in ("test", "external")}
    met = goals(summaries, choices, selective, "test", "external")
    best = summaries["external"][choices.best]["balanced_decision"]["balanced_accuracy"]
    assert met["external balanced accuracy >= 0.65"] == {"value": best, "target": 0.65, "met": best >= 0.65}
    assert goals(summaries, choices, selective, "test", None) == {}


def test_operating_points_score_every_system_on_benign_against_malignant() -> None:
    from sklearn.metrics import roc_auc_score

    from helpers.evaluation.shift import operating_points

    models = _models()
    choices = _choose(models)
    table = operating_points(models, choices, ["test", "external"])
    for name in ("a", "bin"):  # a seven-class model and a binary one, on the same task
        outputs = models[name].splits["external"]
        truth = np.isin(outputs.dx, ["mel", "bcc", "akiec"])
        expected = roc_auc_score(truth, malignant_probability(system_probs(models, choices, "external")[name],
                                                              models[name].classes))
        assert table.loc[(name, "external"), "malignant AUC"] == pytest.approx(round(expected, 3))
    assert table.loc[("a", "test"), "malignant AUC"] != table.loc[("a", "external"), "malignant AUC"]


def test_load_external_matches_labels_and_keeps_a_share_per_class(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    rows = []
    for i in range(30):
        name = f"ISIC_{i:07d}"
        Image.fromarray(np.full((15, 20, 3), i, dtype=np.uint8)).save(tmp_path / "images" / f"{name}.jpg")
        rows.append({"image_id": name, "dx": ["nv", "mel", "bcc"][i % 3]})
    rows.append({"image_id": "ISIC_9999999", "dx": "nv"})  # a label without an image
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    external = load_external(tmp_path)
    assert len(external.table) == 30 and external.excluded["labels without images"] == 1
    capped = load_external(tmp_path, max_images=9)
    assert capped.table["dx"].value_counts().to_dict() == {"nv": 3, "mel": 3, "bcc": 3}
    assert external.images(8, "center_crop").shape == (30, 8, 8, 3)


def test_a_checkpoint_of_another_preset_or_split_does_not_count(tmp_path: Path) -> None:
    from helpers.data.splits import SPLIT_VERSION
    from helpers.models import save_checkpoint
    from helpers.models.classifier import build_classifier

    path = tmp_path / "m.pt"
    assert checkpoint_problem(path, {}) == "no checkpoint yet"
    run = {"preset": "smoke", "data_source": "synthetic", "max_images": 210, "seed": 0, "split_version": SPLIT_VERSION}
    save_checkpoint(build_classifier("improved_cnn", ["benign", "malignant"], 16), path, {"run": run})
    assert checkpoint_problem(path, run) is None
    assert "preset 'smoke' (this run: 'cpu')" in checkpoint_problem(path, {**run, "preset": "cpu"})
    # a model trained on a split of another list of linked lesions may have trained on this split's test images
    assert f"split_version {SPLIT_VERSION!r} (this run: 'linked0')" in checkpoint_problem(path, {**run, "split_version": "linked0"})
