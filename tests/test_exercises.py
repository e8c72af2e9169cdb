"""Exercises as edits: an arm takes its settings as keywords (named after them), and the edits the notebooks'
"Try it yourself" cells state apply to the notebooks as written (tests/exercises.py reads them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exercises import Edit, apply_edits, exercise_edits
from helpers import setup
from helpers.course.cost.series import REFERENCE_CPU

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_an_arm_takes_its_settings_as_keywords_and_is_named_after_them(synthetic_dir: Path) -> None:
    config = setup("03_custom_cnn", "smoke", data_dir=str(synthetic_dir), show=False)
    improved = config.arm("improved")
    changed = config.arm("improved", imbalance="none", label_smoothing=0.0)
    assert changed.name == "improved (imbalance='none', label_smoothing=0.0)"
    assert (changed.train.imbalance, changed.train.label_smoothing) == ("none", 0.0)
    assert changed.train.epochs == improved.train.epochs and improved.train.imbalance != "none"
    dropout = config.arm("reference_no_dropout", dropout=0.8)
    assert dropout.model_kwargs == {"dropout": 0.8} and dropout.build(["a", "b"]).net is not None
    assert config.arm("improved") == improved  # no keyword: the recipe's arm itself
    assert improved.row("improved_cnn, our recipe") == "improved_cnn, our recipe"  # table rows name the changes only
    assert changed.row("ours") == "ours (imbalance='none', label_smoothing=0.0)"
    again = changed.with_settings(imbalance="balanced_sampling")  # a setting changed twice is named once, by its last value
    assert again.name == "improved (label_smoothing=0.0, imbalance='balanced_sampling')" and again.train.imbalance == "balanced_sampling"
    with pytest.raises(ValueError, match="lr"):
        config.arm("improved", lr=-1.0)


def parameters_of(notebook: dict) -> set[str]:
    """The names the notebook's parameters cell assigns."""
    cell = next(c for c in notebook["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    return {line.split("=")[0].strip() for line in "".join(cell["source"]).splitlines() if "=" in line}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_stated_edits_apply_to_the_notebook_as_written(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    edits = [edit for found in exercise_edits(notebook).values() for edit in found]
    _, parameters = apply_edits(notebook, [e for e in edits if e.anchor is not None])
    assert {e.name_or_old for e in edits if e.anchor is None} <= parameters_of(notebook)


def test_an_edit_that_no_longer_applies_fails() -> None:
    notebook = {"cells": [{"cell_type": "code", "source": "arm = config.arm('improved')\n", "metadata": {}},
                          {"cell_type": "markdown", "source": "**Try it yourself: x.** In the cell with `arm = `, "
                           "change `config.arm('gone')` to `config.arm('gone', lr=1)`.", "metadata": {}}]}
    edits = exercise_edits(notebook)["x"]
    assert edits == [Edit("x", "config.arm('gone')", "config.arm('gone', lr=1)", "arm = ")]
    with pytest.raises(ValueError, match="not once"):
        apply_edits(notebook, edits)
    fixed = {"cells": [{**notebook["cells"][0], "source": "arm = config.arm('gone')\n"}]}
    edited, _ = apply_edits(fixed, edits)
    assert edited["cells"][0]["source"] == "arm = config.arm('gone', lr=1)\n"


def expect_01(metrics: dict, folder: Path) -> None:
    assert (metrics["config"]["seed"], metrics["data_source"]) == (1, "synthetic")


def expect_02(metrics: dict, folder: Path) -> None:
    assert (metrics["leakage"]["model"], metrics["leakage"]["image_size"]) == ("reference_cnn", 48)


def expect_03(metrics: dict, folder: Path) -> None:
    assert {"reference_cnn, reference recipe, dropout 0.8", "improved_cnn, our recipe (imbalance='none') + TTA"} <= set(metrics["models"])
    assert metrics["headline"]["model"] == "improved_cnn, our recipe (imbalance='none') + TTA"


def expect_04(metrics: dict, folder: Path) -> None:
    names = set(metrics["models"])
    assert any(name.endswith("fine-tuned (backbone_lr=0.003)") for name in names), names
    assert "resnet34 scratch, plain cross-entropy (imbalance='balanced_sampling')" in names
    assert metrics["recipes"]["resnet34 scratch, plain cross-entropy (imbalance='balanced_sampling')"]["imbalance"] == "balanced_sampling"
    assert metrics["subgroups_model"] == "resnet34 scratch"


def expect_05(metrics: dict, folder: Path) -> None:
    assert metrics["task_b"]["target_sensitivity"] == 0.95
    assert metrics["config"]["image_size"] == 128


def expect_06(metrics: dict, folder: Path) -> None:
    assert metrics["config"]["seed"] == 1
    assert list((folder / "models" / "scaling" / "mine").glob("*.json")), "results_dir was not used"  # ../models from notebooks/
    assert len({row["fraction"] for row in metrics["scaling"]}) > 2  # fractions passed to setup(...) reach the grid


def expect_07(metrics: dict, folder: Path) -> None:
    assert metrics["tta"] is False
    assert metrics["choices"]["target_sensitivity"] == 0.95
    assert set(metrics["choices"]["coverage_thresholds"]) == {"0.7", "0.95"}
    assert {row["split"] for row in metrics["operating_points"]} >= {"test"}


@pytest.fixture(scope="module")
def exercise_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models folder for every exercise run, holding the project's model profiles where it has them (FLOP counts
    the time estimates read) and none of its checkpoints."""
    import shutil

    from helpers.data.source import models_home

    folder = tmp_path_factory.mktemp("exercise-models")
    if (models_home() / "profiles.json").is_file():
        shutil.copy2(models_home() / "profiles.json", folder / "profiles.json")
    return folder


EXPECTED = {"01": expect_01, "02": expect_02, "03": expect_03, "04": expect_04, "05": expect_05, "06": expect_06,
            "07": expect_07}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_exercise_runs_on_the_smoke_preset(path: Path, tmp_path: Path, exercise_models: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """All of a notebook's exercise edits at once (they are independent), executed on the smoke preset; the
    metrics the run saves show each edit took effect."""
    import papermill
    from PIL import Image

    notebook = json.loads(path.read_text(encoding="utf-8"))
    edited, parameters = apply_edits(notebook, [edit for found in exercise_edits(notebook).values() for edit in found])
    assert parameters or any(e.anchor for found in exercise_edits(notebook).values() for e in found)
    here = tmp_path / "notebooks"  # the notebook's relative paths (../models/...) land in tmp_path
    here.mkdir()
    if isinstance(parameters.get("image_path"), str):  # "put an image of your own beside this notebook"
        pixels = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(here / parameters["image_path"])
    (here / path.name).write_text(json.dumps(edited), encoding="utf-8")
    metrics_file = tmp_path / "metrics.json"
    monkeypatch.setenv("SKIN_LESION_METRICS_OUT", str(metrics_file))
    monkeypatch.setenv("SKIN_LESION_MODELS_DIR", str(exercise_models))
    monkeypatch.setenv("SKIN_LESION_CALIBRATION", str(REFERENCE_CPU))  # estimate from the committed calibration: no
    # calibration of a new model/size pair (a minute for resnet34 at 224 px) in front of a smoke run
    papermill.execute_notebook(str(here / path.name), str(tmp_path / "executed.ipynb"),
                               parameters={**parameters, "preset": "smoke"}, kernel_name="python3", cwd=str(here),
                               progress_bar=False)
    EXPECTED[path.name[:2]](json.loads(metrics_file.read_text(encoding="utf-8")), tmp_path)
