"""Project files stay consistent: environment.yml mirrors pyproject.toml; notebooks are stripped with a parameters cell
(after the Colab setup cell)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHECKED_TAG = "nbval-check-output"  # nbval compares these cells' committed output with a fresh run
BOOTSTRAP_TAG = "colab-bootstrap"  # helpers/colab.py writes this cell before the parameters cell
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def normalized(requirement: str) -> str:
    name, _, rest = re.match(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?(.*)", requirement.strip()).groups()
    return re.sub(r"[-_.]+", "-", name).lower() + rest.replace(" ", "")


def test_environment_yml_mirrors_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    own = normalized(project["name"])
    wanted = {normalized(r) for r in project["dependencies"] + extras["reports"] + extras["lab"] + extras["lite"]
              + extras["dev"]
              if not normalized(r).startswith(own)}
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    listed = {normalized(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.split("=")[-1] >= project["requires-python"].lstrip(">=")


def test_runtime_dependencies_leave_out_the_report_and_lab_tools() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {normalized(r).split(">")[0].split("=")[0] for r in project["dependencies"]}
    assert not runtime & {"papermill", "nbconvert", "jupyterlab", "pytest", "nbval"}
    assert "ipywidgets" in runtime, "tqdm's notebook bars need ipywidgets in the kernel"
    assert "skin-lesion-course[reports,lab,lite]" in project["optional-dependencies"]["dev"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stripped_with_parameters_cell(path: Path) -> None:
    notebook = nbformat.read(str(path), as_version=4)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    first = 1 if BOOTSTRAP_TAG in code[0].metadata.get("tags", []) else 0  # the Colab setup cell may come first
    assert "parameters" in code[first].metadata.get("tags", []), \
        f"the first code cell (after the {BOOTSTRAP_TAG} cell) must be tagged parameters"
    assert not any(BOOTSTRAP_TAG in c.metadata.get("tags", []) for c in code[first + 1:]), \
        f"the {BOOTSTRAP_TAG} cell must come right before the parameters cell"
    unchecked = [c for c in code if CHECKED_TAG not in c.metadata.get("tags", [])]
    assert all(not c.outputs and c.execution_count is None for c in unchecked), \
        f"commit notebooks without outputs (except cells tagged {CHECKED_TAG})"


def test_output_checked_cells_hold_the_expected_output_of_deterministic_checks() -> None:
    checked = {path.stem: [c for c in nbformat.read(str(path), as_version=4).cells
                           if CHECKED_TAG in c.metadata.get("tags", [])] for path in NOTEBOOKS}
    assert len(checked["01_eda"]) >= 2 and len(checked["02_preprocessing"]) >= 1
    for cells in checked.values():
        for cell in cells:
            text = "".join(o.get("text", "") for o in cell.outputs)
            assert text.strip(), "a checked cell needs the output nbval compares against"
