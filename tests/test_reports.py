"""The report runner: papermill execution, HTML without the injected cell, metrics, index, failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from helpers.data import source as source_module
from helpers.reports import run_series


def write_notebook(path: Path, body: str) -> None:
    params = nbformat.v4.new_code_cell('preset = "auto"\nmarker = "default"')
    params.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(body)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(path))


GOOD = ("from helpers.reports import save_metrics\nprint('ran with preset', preset)\n"
        "save_metrics({'notebook': 'x', 'preset': preset, 'data_source': 'ham10000', 'models': {}, 'headline': 'all good'})")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    write_notebook(tmp_path / "notebooks" / "01_good.ipynb", GOOD)
    write_notebook(tmp_path / "notebooks" / "02_bad.ipynb", "raise RuntimeError('boom in notebook two')")
    return tmp_path


def test_series_writes_reports_and_keeps_last_good_one(project: Path, synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAM10000_DIR", str(synthetic_dir))
    assert run_series(preset="smoke", root=project) == 1
    reports = project / "reports"
    html = (reports / "01_good.html").read_text()
    assert "ran with preset smoke" in html and "injected-parameters" not in html
    assert json.loads((reports / "metrics" / "01_good.json").read_text())["preset"] == "smoke"
    assert not (reports / "02_bad.html").exists() and (reports / "02_bad.failed.html").exists()
    index = (reports / "index.html").read_text()
    assert 'class="failed"' in index and "boom in notebook two" in index and "all good" in index

    write_notebook(project / "notebooks" / "01_good.ipynb", "raise ValueError('now broken')")
    assert run_series(preset="smoke", root=project) == 2
    assert (reports / "01_good.html").read_text() == html  # the last good report survives
    assert json.loads((reports / "metrics" / "01_good.json").read_text())["preset"] == "smoke"
    assert not list(reports.rglob("*.tmp")) and not list(reports.rglob("*.running"))


def test_synthetic_runs_go_to_demo(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAM10000_DIR", raising=False)
    monkeypatch.setattr(source_module, "data_home", lambda: tmp_path / "data")
    (project / "notebooks" / "02_bad.ipynb").unlink()
    assert run_series(root=project) == 0
    assert (project / "reports" / "demo" / "01_good.html").exists()
    assert not (project / "reports" / "01_good.html").exists()
    assert "SYNTHETIC DEMO DATA" in (project / "reports" / "demo" / "index.html").read_text()
