"""What is fitted on validation follows validation (issue 25, item 4): the balanced decision's tau, the temperature,
the threshold for a sensitivity and the kept epoch change when the validation split changes, not when the test
split does.

The fixtures make validation and test differ on purpose. A model that reads its logits from the pixels (`PixelLogits`)
lets each part hold the logits we want: part kind "A" is over-confident (logits twice too large) and leans to the
majority class as a model trained on imbalanced data does, so its temperature is about 2 and its tau near 2; kind "B"
is under-confident (half) on balanced labels, so its temperature is about 1/3 and its tau near 0. Each test scores
(val A, test B), then changes test alone (val A, test A') and validation alone (val B', test B): a rule fitted on
validation keeps its value in the first case and moves in the second; a rule fitted on test would do the reverse.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers.data.dataset import SplitData
from helpers.data.tensors import ImageData
from helpers.evaluation.decision import class_priors, fit_tau
from helpers.evaluation.metrics import fit_temperature, threshold_for_sensitivity
from helpers.evaluation.splits import calibrate, evaluate_at_sensitivity, evaluate_split
from helpers.models import load_checkpoint
from helpers.training.augment import AugmentConfig
from helpers.training.inference import evaluate, predict, predict_logits
from helpers.training.loop import TrainConfig, fit

SCALE = 20.0  # PixelLogits: logit = SCALE * (pixel / 255 - 0.5), so logits in [-10, 10] in steps of 0.08
PRIOR = np.array([0.12, 0.8, 0.08])
KINDS = {"A": (2.0, True), "B": (0.5, False)}  # (confidence: the logits' scale, leaning to the majority class)


class PixelLogits(nn.Module):
    """A 'model' whose logits for an image are its first row's first C red values, rescaled to [-10, 10]."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(SCALE))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x[:, 0, 0, :self.num_classes] - 0.5) * self.scale


def as_images(logits: np.ndarray) -> np.ndarray:
    """8 x 8 uint8 images from which PixelLogits reads these logits (to the nearest 0.08)."""
    images = np.zeros((len(logits), 8, 8, 3), np.uint8)
    images[:, 0, :logits.shape[1], 0] = np.clip(np.round((logits / SCALE + 0.5) * 255), 0, 255)
    return images


def multiclass_part(kind: str, seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of three classes: labels drawn from PRIOR (or uniformly for B), logits as the kind says."""
    confidence, leaning = KINDS[kind]
    rng = np.random.default_rng(seed)
    prior = PRIOR if leaning else np.full(3, 1 / 3)
    labels = rng.choice(3, size=n, p=prior)
    logits = rng.normal(0, 1, (n, 3)) + 1.5 * np.eye(3)[labels] + (np.log(PRIOR) if leaning else 0.0)
    return as_images(confidence * logits), labels


def binary_part(kind: str, seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) benign/malignant: A's malignant scores sit high, B's barely above the benign ones."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.int64)
    margin = 3.0 if kind == "A" else 0.8
    score = rng.normal(0, 1, n) + margin * labels
    return as_images(np.stack([-score / 2, score / 2], axis=1)), labels


def split_data(parts: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str]) -> SplitData:
    """A SplitData of the given (images, labels) per split, one image per lesion."""
    rows = [pd.DataFrame({"lesion_id": [f"{name}{i}" for i in range(len(labels))], "split": name})
            for name, (_, labels) in parts.items()]
    data = {name: ImageData.from_numpy(images, labels) for name, (images, labels) in parts.items()}
    return SplitData(pd.concat(rows, ignore_index=True), classes, 8, "lesion_disjoint", data)


def multiclass(val: tuple[str, int], test: tuple[str, int]) -> SplitData:
    train = multiclass_part("A", 0, n=400)  # only its labels matter here: the priors of the balanced decision
    return split_data({"train": train, "val": multiclass_part(*val), "test": multiclass_part(*test)}, ["x", "y", "z"])


# (val, test): the base case, test changed (from kind B to kind A), validation changed (from kind A to kind B)
BASE, TEST_CHANGED, VAL_CHANGED = (("A", 1), ("B", 1)), (("A", 1), ("A", 2)), (("B", 2), ("B", 1))


def fitted_on(data: SplitData, part: str) -> tuple[float, float]:
    """(tau, temperature) fitted directly on one part, without the code under test."""
    model, labels = PixelLogits(3), data.parts[part].labels.numpy()
    priors = class_priors(data.train.labels.numpy(), 3)
    return (fit_tau(predict(model, data.parts[part].images), labels, priors),
            fit_temperature(predict_logits(model, data.parts[part].images), labels))


def test_the_fixture_parts_disagree_on_every_rule() -> None:
    """Otherwise the tests below could not tell a rule fitted on validation from one fitted on test."""
    data = multiclass(*BASE)
    (tau_val, t_val), (tau_test, t_test) = fitted_on(data, "val"), fitted_on(data, "test")
    assert tau_val >= 1.5 and tau_test <= 0.5 and t_val > 1.5 and t_test < 0.5


@pytest.mark.parametrize("cases", [BASE, TEST_CHANGED, VAL_CHANGED], ids=["base", "test changed", "val changed"])
def test_balanced_decision_tau_is_the_one_fitted_on_validation(cases: tuple) -> None:
    data = multiclass(*cases)
    decision = evaluate_split(PixelLogits(3), data, "test", n_boot=10).summary["balanced_decision"]
    assert decision["tau"] == fitted_on(data, "val")[0]
    adjusted = np.argmax(np.log(predict(PixelLogits(3), data.test.images)) - decision["tau"] * np.log(
        class_priors(data.train.labels.numpy(), 3)), axis=1)  # and it is scored on test
    assert decision["accuracy"] == pytest.approx(float((adjusted == data.test.labels.numpy()).mean()))


def test_tau_and_temperature_move_with_validation_not_with_test() -> None:
    def rules(cases: tuple) -> tuple[float, float]:
        data = multiclass(*cases)
        model = PixelLogits(3)
        tau = evaluate_split(model, data, "test", n_boot=10).summary["balanced_decision"]["tau"]
        return tau, calibrate(model, data, "test", n_boot=10).temperature

    (tau, temperature), (tau_t, temperature_t), (tau_v, temperature_v) = map(rules, (BASE, TEST_CHANGED, VAL_CHANGED))
    assert tau_t == tau and temperature_t == temperature  # test changed: nothing fitted moves
    assert abs(tau_v - tau) >= 1.0 and temperature_v < temperature / 3  # validation changed: both move


@pytest.mark.parametrize("cases", [BASE, TEST_CHANGED, VAL_CHANGED], ids=["base", "test changed", "val changed"])
def test_calibrate_fits_the_temperature_on_validation_and_applies_it_to_test(cases: tuple) -> None:
    data = multiclass(*cases)
    model = PixelLogits(3)
    calibrated = calibrate(model, data, "test", n_boot=10)
    assert calibrated.temperature == pytest.approx(fitted_on(data, "val")[1], rel=1e-6)
    logits = predict_logits(model, data.test.images).numpy().astype(np.float64) / calibrated.temperature
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(calibrated.calibrated.probs, expected / expected.sum(1, keepdims=True), rtol=1e-6)
    assert np.array_equal(calibrated.calibrated.y_true, data.test.labels.numpy())


@pytest.mark.parametrize("cases", [BASE, TEST_CHANGED, VAL_CHANGED], ids=["base", "test changed", "val changed"])
def test_checkpoint_rules_of_a_recipe_are_fitted_on_validation(cases: tuple) -> None:
    """helpers.course.train_recipe.validation_rules: what a --recipe checkpoint carries to helpers.evaluate."""
    from helpers.course.train_recipe import validation_rules

    data = multiclass(*cases)
    rules = validation_rules(PixelLogits(3), data)
    tau, temperature = fitted_on(data, "val")
    assert rules["decision"]["tau"] == tau and rules["temperature"] == pytest.approx(temperature, rel=1e-6)
    assert rules["decision"]["priors"] == pytest.approx(class_priors(data.train.labels.numpy(), 3).tolist())


def test_the_sensitivity_threshold_moves_with_validation_not_with_test() -> None:
    def threshold(val: tuple[str, int], test: tuple[str, int]) -> tuple[float, SplitData, dict]:
        data = split_data({"train": binary_part("A", 0), "val": binary_part(*val), "test": binary_part(*test)},
                          ["benign", "malignant"])
        chosen, evaluation = evaluate_at_sensitivity(PixelLogits(2), data, target=0.9, n_boot=10)
        return chosen, data, evaluation.summary

    base, data, summary = threshold(("A", 1), ("B", 1))
    val_p = predict(PixelLogits(2), data.val.images)[:, 1]
    test_p = predict(PixelLogits(2), data.test.images)[:, 1]
    assert base == threshold_for_sensitivity(data.val.labels.numpy(), val_p, 0.9)
    assert abs(base - threshold_for_sensitivity(data.test.labels.numpy(), test_p, 0.9)) > 0.1  # the parts disagree
    positive = data.test.labels.numpy() == 1
    assert summary["threshold"] == base and summary["sensitivity"] == pytest.approx((test_p[positive] >= base).mean())
    assert threshold(("A", 1), ("A", 2))[0] == base  # test changed
    assert abs(threshold(("B", 2), ("B", 1))[0] - base) > 0.1  # validation changed
    with pytest.raises(ValueError, match="binary"):
        evaluate_at_sensitivity(PixelLogits(3), multiclass(*BASE))


# --- the kept epoch ---------------------------------------------------------------------------------------------

def colour_images(n: int, seed: int, shift: int = 0) -> ImageData:
    """16 px images of three classes told apart by colour, with heavy pixel noise; shift relabels class k as k+shift."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    colours = torch.tensor([[170.0, 80, 80], [80, 170, 80], [80, 80, 170]])
    images = colours[labels][:, None, None, :] + torch.randn(n, 16, 16, 3, generator=generator) * 70
    return ImageData(images.clamp(0, 255).to(torch.uint8), (labels + shift) % 3)


def image_split(parts: dict[str, ImageData]) -> SplitData:
    """A SplitData of 16 px ImageData per split, one image per lesion."""
    index = pd.DataFrame({"lesion_id": [f"{s}{i}" for s, p in parts.items() for i in range(len(p))],
                          "split": [s for s, p in parts.items() for _ in range(len(p))]})
    return SplitData(index, ["a", "b", "c"], 16, "lesion_disjoint", parts)


def kept_epoch(val: ImageData) -> tuple[int, pd.DataFrame, torch.nn.Module]:
    from helpers.models import build_classifier

    torch.manual_seed(0)
    model = build_classifier("reference_cnn", ["a", "b", "c"], 16)
    config = TrainConfig(epochs=4, batch_size=32, lr=3e-4, schedule="constant", monitor="val_loss",
                         augment=AugmentConfig.none(), amp="off", channels_last=False, progress=False)
    result = fit(model, colour_images(96, 0), val, config)
    return result.best_epoch, result.history, model


def test_fit_keeps_the_epoch_validation_chooses() -> None:
    """Training never sees validation, so only the kept epoch can depend on it: a validation set that agrees with
    training keeps the last epoch, one whose labels are shifted (learning makes it worse) keeps the first."""
    agreeing, shifted = colour_images(48, 1), colour_images(48, 1, shift=1)
    best, history, model = kept_epoch(agreeing)
    # amp="off" as in training: "auto" means bf16 on a CPU with avx512_bf16, which moves the loss by ~1e-4
    assert history["val_loss"].is_monotonic_decreasing and best == 4
    assert evaluate(model, agreeing, amp="off")["loss"] == pytest.approx(history["val_loss"].iloc[best - 1], rel=1e-5)
    best_shifted, history_shifted, model_shifted = kept_epoch(shifted)
    assert best_shifted == int(history_shifted["val_loss"].idxmin()) + 1 == 1
    assert evaluate(model_shifted, shifted, amp="off")["loss"] == pytest.approx(history_shifted["val_loss"].iloc[0], rel=1e-5)
    np.testing.assert_allclose(history_shifted["train_loss"], history["train_loss"], rtol=1e-6)  # the same training


def test_train_command_keeps_the_epoch_of_validation_whatever_test_holds(tmp_path: Path, monkeypatch,
                                                                        capsys: pytest.CaptureFixture) -> None:
    """python -m helpers.train (flags): its checkpoint and the validation score it reports do not depend on test."""
    from helpers.train import main

    def run(val: ImageData, test: ImageData, name: str) -> tuple[dict, dict]:
        data = image_split({"train": colour_images(96, 0), "val": val, "test": test})
        monkeypatch.setattr("helpers.train.load_split_data", lambda *args, **kwargs: data)
        checkpoint = tmp_path / f"{name}.pt"
        assert main(["--data", str(tmp_path), "--model", "reference_cnn", "--image-size", "16", "--epochs", "3",
                     "--batch-size", "32", "--lr", "3e-4", "--checkpoint", str(checkpoint)]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        return summary, load_checkpoint(checkpoint)[1]

    summary, payload = run(colour_images(48, 1), colour_images(48, 2), "base")
    other_test, other_payload = run(colour_images(48, 1), colour_images(48, 2, shift=1), "test_changed")
    assert other_test["test_accuracy"] != summary["test_accuracy"]  # the change to test is seen where test is scored
    for key in ("best_epoch", "val_balanced_accuracy"):
        assert other_test[key] == summary[key], key
    assert payload["extra"] == other_payload["extra"]
    assert all(torch.equal(payload["state_dict"][k], v) for k, v in other_payload["state_dict"].items())
    other_val, _ = run(colour_images(48, 1, shift=1), colour_images(48, 2), "val_changed")
    assert other_val["val_balanced_accuracy"] != summary["val_balanced_accuracy"]


def test_explain_image_calibrates_on_validation_only(tmp_path: Path) -> None:
    """explain_image's temperature comes from calibration.val, whatever calibration.test holds."""
    from PIL import Image

    from helpers.evaluation.splits import explain_image
    from helpers.models import build_classifier, save_checkpoint

    torch.manual_seed(0)
    checkpoint = save_checkpoint(build_classifier("reference_cnn", ["a", "b", "c"], 16), tmp_path / "m.pt")
    images = colour_images(60, 3).images
    logits = predict_logits(load_checkpoint(checkpoint)[0], images)
    mostly_right = logits.argmax(1)
    mostly_right[::3] = (mostly_right[::3] + 1) % 3  # the untrained model is right about two times in three
    always_wrong = logits.argmin(1)
    path = tmp_path / "one.png"
    Image.fromarray(images[0].numpy()).save(path)

    def temperature(val_labels: torch.Tensor, test_labels: torch.Tensor) -> float:
        calibration = image_split({"train": ImageData(images, mostly_right), "val": ImageData(images, val_labels),
                                   "test": ImageData(images, test_labels)})
        return explain_image(checkpoint, path, calibration).temperature

    base = temperature(mostly_right, always_wrong)
    assert base == pytest.approx(fit_temperature(logits, mostly_right), rel=1e-6)
    assert abs(fit_temperature(logits, always_wrong) - base) > 1  # the parts disagree
    assert temperature(mostly_right, mostly_right) == base  # test changed
    assert abs(temperature(always_wrong, always_wrong) - base) > 1  # validation changed
