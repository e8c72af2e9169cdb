"""python -m helpers.train --recipe NOTEBOOK:NAME trains exactly a notebook's arm; helpers.evaluate scores the result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.data import load_ham10000
from helpers.evaluate import main as evaluate_main
from helpers.models import load_checkpoint
from helpers.course.recipes import find_arm, list_arms
from helpers.train import main


def test_list_recipes_names_every_arm(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-recipes", "--preset", "cpu"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == list_arms("cpu")
    assert any(line.startswith("03_custom_cnn:improved ") and "improved_cnn" in line for line in printed)


def test_a_recipe_trains_the_notebooks_arm_and_evaluate_applies_its_rules(synthetic_dir: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = tmp_path / "improved.pt"
    assert main(["--recipe", "03_custom_cnn:improved", "--preset", "smoke", "--data", str(synthetic_dir),
                 "--checkpoint", str(checkpoint)]) == 0
    captured = capsys.readouterr()
    assert f"checkpoint written to {checkpoint}" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["recipe"] == "03_custom_cnn:improved" and summary["epochs_run"] >= 1
    model, payload = load_checkpoint(checkpoint)
    arm = find_arm("03_custom_cnn:improved", "smoke")
    assert payload["config"]["train"] == arm.train.to_dict() and payload["config"]["run"]["preset"] == "smoke"
    assert model.image_size == arm.image_size and payload["arch"]["name"] == arm.model
    assert payload["extra"]["temperature"] > 0 and payload["extra"]["decision"]["tau"] >= 0

    images, labels = tmp_path / "external", tmp_path / "labels.csv"
    images.mkdir()
    index = load_ham10000(synthetic_dir, progress=False).tail(30)
    for path in index["path"]:
        shutil.copy(path, images)
    index[["image_id", "lesion_id", "dx"]].to_csv(labels, index=False)
    out = tmp_path / "metrics.json"
    assert evaluate_main(["--checkpoint", str(checkpoint), "--images", str(images), "--labels", str(labels),
                          "--out", str(out), "--n-boot", "20"]) == 0
    result = json.loads(out.read_text())
    assert result["n_images"] == 30 and result["temperature"] == payload["extra"]["temperature"]
    assert result["balanced_decision"]["tau"] == payload["extra"]["decision"]["tau"]


def test_the_binary_arm_trains_benign_vs_malignant_with_its_offline_weights(synthetic_dir: Path, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = tmp_path / "ham.pt"
    assert main(["--recipe", "05_efficientnet_binary:ham", "--preset", "smoke", "--data", str(synthetic_dir),
                 "--checkpoint", str(checkpoint)]) == 0
    err = capsys.readouterr().err
    assert "efficientnet_lite0" in err  # offline, EfficientNet-B0's weights are replaced by Lite0's, and it says so
    model, payload = load_checkpoint(checkpoint)
    assert model.classes == ["benign", "malignant"] and "decision" not in payload["extra"]
    assert payload["config"]["run"]["arm"]["model"] == "efficientnet_lite0"


def test_the_probe_recipe_fits_its_head_on_cached_features_without_epochs(synthetic_dir: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = tmp_path / "probe.pt"
    assert main(["--recipe", "04_resnet_transfer:probe", "--preset", "smoke", "--data", str(synthetic_dir),
                 "--checkpoint", str(checkpoint)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epochs_run"] == 0 and summary["test_balanced_accuracy"] is not None
    model, payload = load_checkpoint(checkpoint)
    assert payload["config"]["run"]["arm"]["frozen_backbone"] and model.image_size == find_arm(
        "04_resnet_transfer:probe", "smoke").image_size


def test_only_a_probe_arm_is_fitted_as_a_linear_probe() -> None:
    with pytest.raises(ValueError, match="train it with fit"):
        find_arm("04_resnet_transfer:finetune", "smoke").fit_linear_probe(None)


@pytest.mark.parametrize(("argv", "message"), [
    (["--recipe", "03_custom_cnn:bogus", "--checkpoint", "x.pt"], "has no arm 'bogus'"),
    (["--recipe", "03_custom_cnn", "--checkpoint", "x.pt"], "NOTEBOOK:NAME"),
    (["--recipe", "03_custom_cnn:improved"], "--recipe needs --checkpoint"),
])
def test_bad_recipes_get_one_error_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--preset", "smoke"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
