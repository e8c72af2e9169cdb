"""The report runner: papermill execution, HTML without the injected cell, metrics (refused when they break the
contract), index, the results table of docs/results.md, failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from helpers.data import source as source_module
from helpers.reporting.series import run_series, to_html, without_machine_paths
from helpers.reporting.site import series_time
from helpers.reporting.results import RESULTS_END, RESULTS_PAGE, RESULTS_START


def write_notebook(path: Path, body: str) -> None:
    params = nbformat.v4.new_code_cell('preset = "auto"\nmarker = "default"')
    params.metadata["tags"] = ["parameters"]
    notebook = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(body)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, str(path))


MODEL = {"accuracy": 0.8, "balanced_accuracy": 0.7, "macro_f1": 0.6, "macro_auc": 0.9, "per_class_recall": {"nv": 0.9, "mel": 0.5, "bcc": None},
         "ci95": {"accuracy": [0.75, 0.85], "balanced_accuracy": [0.65, 0.75], "macro_f1": [0.55, 0.65], "macro_auc": [0.85, 0.95]},
         "n_test": 40}


def saving(metrics: dict, extra: str = "") -> str:
    """A notebook body that prints its preset and hands over metrics (with the preset it ran with)."""
    header = {"notebook": "01_good", "device": "cpu", "device_name": "CPU test", "data_source": "ham10000", "n_images": 140,
              "split": "lesion_disjoint", "wall_time_s": 1.0, "created": "2026-01-01T00:00:00+00:00", "models": {}}
    return (f"from helpers.reporting.series import save_metrics\nprint('ran with preset', preset)\n{extra}"
            f"save_metrics({{**{header!r}, **{metrics!r}, 'preset': preset}})")


GOOD = saving({"models": {"cnn": MODEL}})
RESULTS = f"# Results\n\n{RESULTS_START}\n{RESULTS_END}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    write_notebook(tmp_path / "notebooks" / "01_good.ipynb", GOOD)
    write_notebook(tmp_path / "notebooks" / "02_bad.ipynb", "raise RuntimeError('boom in notebook two')")
    (tmp_path / RESULTS_PAGE).parent.mkdir()
    (tmp_path / RESULTS_PAGE).write_text(RESULTS)
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
    assert 'class="failed"' in index and "boom in notebook two" in index
    assert "cnn: balanced accuracy 0.700 (95% CI 0.650–0.750), accuracy 0.800, macro AUC 0.900, n_test 40" in index
    results = (project / RESULTS_PAGE).read_text()
    assert ("| [01_good](../reports/01_good.html) | cnn | smoke | ham10000 | lesion_disjoint | CPU test | 40 "
            "| 0.800 | 0.700 (0.650–0.750) | 0.900 |") in results

    write_notebook(project / "notebooks" / "01_good.ipynb", "raise ValueError('now broken')")
    assert run_series(preset="smoke", root=project) == 2
    assert (reports / "01_good.html").read_text() == html  # the last good report survives
    assert json.loads((reports / "metrics" / "01_good.json").read_text())["preset"] == "smoke"
    assert not list(reports.rglob("*.tmp")) and not list(reports.rglob("*.running"))

    write_notebook(project / "notebooks" / "02_bad.ipynb", "print('fixed')")  # its next good run drops the failed page
    assert run_series(preset="smoke", root=project, only=["02_bad"]) == 0
    assert (reports / "02_bad.html").exists() and not (reports / "02_bad.failed.html").exists()


def test_synthetic_runs_go_to_demo(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAM10000_DIR", raising=False)
    monkeypatch.setattr(source_module, "data_home", lambda: tmp_path / "data")
    (project / "notebooks" / "02_bad.ipynb").unlink()
    assert run_series(root=project) == 0
    assert (project / "reports" / "demo" / "01_good.html").exists()
    assert not (project / "reports" / "01_good.html").exists()
    assert "SYNTHETIC DEMO DATA" in (project / "reports" / "demo" / "index.html").read_text()
    assert (project / RESULTS_PAGE).read_text() == RESULTS  # demo runs never reach the results table


def test_metrics_that_break_the_contract_are_refused(project: Path, synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAM10000_DIR", str(synthetic_dir))
    (project / "notebooks" / "02_bad.ipynb").unlink()
    reports = project / "reports"
    (reports / "metrics").mkdir(parents=True)
    (reports / "01_good.html").write_text("last good report")
    (reports / "metrics" / "01_good.json").write_text("{}")  # stands for the last good metrics
    broken = {"notebook": "01_wrong", "models": {"cnn": {**MODEL, "accuracy": 1.5}}}
    write_notebook(project / "notebooks" / "01_good.ipynb", saving(broken))
    assert run_series(root=project) == 1
    error = json.loads((reports / "runs.json").read_text())["01_good"]["error"]
    assert error.startswith("metrics break the JSON contract: ")
    assert "notebook is '01_wrong' but the file is '01_good'" in error and "models['cnn']: accuracy must be" in error
    assert (reports / "01_good.html").read_text() == "last good report"
    assert (reports / "metrics" / "01_good.json").read_text() == "{}"
    assert "ran with preset" in (reports / "01_good.failed.html").read_text()
    assert "metrics break the JSON contract" in (reports / "index.html").read_text()
    assert not list(reports.rglob("*.running"))


def test_series_time_sums_the_latest_successful_runs() -> None:
    runs = {"01_a": {"status": "ok", "wall_time_s": 60.0, "parameters": {"preset": "cpu"}},
            "02_b": {"status": "failed", "wall_time_s": 5.0, "parameters": {"preset": "cpu"}},
            "03_c": {"status": "ok", "wall_time_s": 120.0, "parameters": {"preset": "gpu"}}}
    line = series_time(runs, ["01_a", "02_b", "03_c", "04_d"])
    assert line.startswith("2 of 4 notebooks ran")
    assert "180 s (3.0 min)" in line and "cpu + gpu" in line


def test_html_shows_a_progress_bar_once_in_its_final_state(tmp_path: Path) -> None:
    cell = nbformat.v4.new_code_cell("pass")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=f"\rcache 64px: {pct}%|")
                    for pct in (0, 40, 80)] + [nbformat.v4.new_output("stream", name="stderr", text="\rcache 64px: 100%|\n")]
    path = tmp_path / "executed.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), str(path))
    html = to_html(path)
    assert html.count("cache 64px:") == 1 and "cache 64px: 100%|" in html


def test_published_html_names_files_relative_to_the_project(tmp_path: Path) -> None:
    text = f"<pre>{tmp_path.resolve()}/helpers/evaluation/gradcam.py:60: UserWarning: x</pre> {tmp_path.parent}/elsewhere"
    assert without_machine_paths(text, tmp_path) == f"<pre>helpers/evaluation/gradcam.py:60: UserWarning: x</pre> {tmp_path.parent}/elsewhere"
