"""Exercises as edits: an arm takes its settings as keywords (named after them), and the edits the notebooks'
"Try it yourself" cells state apply to the notebooks as written (tests/exercises.py reads them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exercises import Edit, apply_edits, exercise_edits
from helpers import setup

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
