"""The metrics JSON contract: committed reports follow it, docs/results.md agrees with them, the validator catches breaks."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.course.config import Config
from helpers.data.labels import BINARY_CLASSES, DX_CLASSES
from helpers.evaluation.metrics import metrics_summary
from helpers.reporting.series import metrics_header
from helpers.reporting.results import (
    RESULTS_COMMAND, RESULTS_END, RESULTS_PAGE, RESULTS_START, replace_results, results_markdown, validate_metrics,
    write_results_table,
)

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
COMMITTED = sorted((REPORTS / "metrics").glob("*.json"))


def model_entry(classes: tuple[str, ...], seed: int = 0) -> dict[str, Any]:
    """A model's entry made by metrics_summary on small random predictions."""
    rng = np.random.default_rng(seed)
    y_true = np.r_[np.arange(len(classes)), rng.integers(0, len(classes), 60)]
    probs = rng.dirichlet(np.ones(len(classes)), len(y_true))
    return metrics_summary(y_true, probs, classes, groups=np.arange(len(y_true)) // 2, n_boot=50)


def valid_metrics(notebook: str = "03_custom_cnn") -> dict[str, Any]:
    """Metrics as a notebook hands them over: metrics_header fields and two models (7 classes, binary)."""
    config = Config(preset="smoke", device="cpu", hardware="CPU test (2 cores)", data_source="ham10000",
                    data_root="data/ham10000", data_origin="test", image_size=32, epochs=1, batch_size=32,
                    max_images=210, seed=0)
    metrics = metrics_header(config, notebook, 210, "lesion_disjoint", time.time() - 2.0)
    metrics["models"] = {"seed_cnn": model_entry(DX_CLASSES), "binary_cnn": model_entry(BINARY_CLASSES, seed=1)}
    return json.loads(json.dumps(metrics))  # as read back from the file


@pytest.mark.parametrize("path", COMMITTED or [pytest.param(None, marks=pytest.mark.skip("no reports/metrics/*.json yet"))],
                         ids=lambda path: path.stem if path else "none")
def test_committed_metrics_follow_the_contract(path: Path) -> None:
    metrics = json.loads(path.read_text(encoding="utf-8"))
    assert validate_metrics(metrics, path.stem) == []
    assert metrics["data_source"] != "synthetic", "reports/metrics/ holds real-data runs only"


def test_docs_results_table_agrees_with_the_metrics_files() -> None:
    page = ROOT / RESULTS_PAGE
    text = page.read_text(encoding="utf-8")
    assert RESULTS_START in text and RESULTS_END in text, f"{RESULTS_PAGE} lost its results markers"
    expected = replace_results(text, results_markdown(REPORTS, page.parent))
    assert text == expected, f"{RESULTS_PAGE}'s results table is stale: run `{RESULTS_COMMAND}`"


def test_readme_links_the_results_page() -> None:
    assert f"]({RESULTS_PAGE.as_posix()})" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_valid_metrics_pass(valid: dict[str, Any]) -> None:
    metrics = copy.deepcopy(valid)
    assert validate_metrics(metrics, "03_custom_cnn") == []
    metrics["models"]["seed_cnn"]["macro_auc"] = None  # undefined metrics are null
    metrics["models"]["seed_cnn"]["ci95"]["macro_auc"] = [None, None]
    metrics["models"] = {**metrics["models"], "extra": {**metrics["models"]["seed_cnn"], "epochs_run": 3}}
    metrics["headline"] = "extra keys are allowed"
    assert validate_metrics(metrics, "03_custom_cnn") == []
    assert validate_metrics({**metrics, "models": {}}, "03_custom_cnn") == []  # e.g. the EDA notebook


def _drop(path: tuple[str, ...]) -> Any:
    return lambda m: _parent(m, path).pop(path[-1])


def _set(path: tuple[str, ...], value: Any) -> Any:
    return lambda m: _parent(m, path).__setitem__(path[-1], value)


def _parent(metrics: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path[:-1]:
        metrics = metrics[key]
    return metrics


SEED = ("models", "seed_cnn")
BINARY = ("models", "binary_cnn")
BROKEN = {
    "missing split": (_drop(("split",)), "missing split"),
    "missing device_name": (_drop(("device_name",)), "missing device_name"),
    "missing models": (_drop(("models",)), "missing models"),
    "models a list": (_set(("models",), []), "models must be a mapping"),
    "wrong notebook": (_set(("notebook",), "04_resnet"), "notebook is '04_resnet' but the file is '03_custom_cnn'"),
    "n_images text": (_set(("n_images",), "210"), "n_images must be an integer > 0"),
    "negative wall time": (_set(("wall_time_s",), -1), "wall_time_s must be"),
    "created not a date": (_set(("created",), "yesterday"), "created must be an ISO 8601"),
    "missing accuracy": (_drop(SEED + ("balanced_accuracy",)), "models['seed_cnn']: missing balanced_accuracy"),
    "accuracy above 1": (_set(SEED + ("accuracy",), 1.5), "models['seed_cnn']: accuracy must be a number in [0, 1]"),
    "NaN metric": (_set(SEED + ("macro_f1",), float("nan")), "macro_f1 must be"),
    "boolean metric": (_set(SEED + ("accuracy",), True), "accuracy must be"),
    "recall a list": (_set(SEED + ("per_class_recall",), [0.5] * 7), "per_class_recall must be a non-empty mapping"),
    "recall negative": (_set(SEED + ("per_class_recall", "mel"), -0.1), "per_class_recall['mel'] must be"),
    "ci reversed": (_set(SEED + ("ci95", "accuracy"), [0.9, 0.1]), "ci95['accuracy'] has low 0.9 > high 0.1"),
    "ci not a pair": (_set(SEED + ("ci95", "accuracy"), [0.1]), "ci95['accuracy'] must be [low, high]"),
    "ci missing metric": (_drop(SEED + ("ci95", "balanced_accuracy")), "ci95 has no interval for balanced_accuracy"),
    "n_test zero": (_set(SEED + ("n_test",), 0), "n_test must be an integer > 0"),
    "n_test float": (_set(SEED + ("n_test",), 67.0), "n_test must be an integer > 0"),
    "binary without auc": (_drop(BINARY + ("auc",)), "models['binary_cnn']: missing auc"),
    "binary sensitivity above 1": (_set(BINARY + ("sensitivity",), 2), "sensitivity must be"),
}


@pytest.fixture(scope="module")
def valid() -> dict[str, Any]:
    """One valid example, shared (copy before changing it)."""
    return valid_metrics()


@pytest.mark.parametrize("name", BROKEN)
def test_broken_metrics_are_caught(name: str, valid: dict[str, Any]) -> None:
    metrics = copy.deepcopy(valid)
    change, expected = BROKEN[name]
    change(metrics)
    problems = validate_metrics(metrics, "03_custom_cnn")
    assert any(expected in problem for problem in problems), problems


def test_not_a_mapping() -> None:
    assert validate_metrics([1, 2], "x") == ["metrics must be a mapping, got list"]


def write_metrics(reports: Path, metrics: dict[str, Any]) -> None:
    (reports / "metrics").mkdir(parents=True, exist_ok=True)
    (reports / "metrics" / f"{metrics['notebook']}.json").write_text(json.dumps(metrics), encoding="utf-8")


PAGE = f"# Course\n\n## Results\n\nProse stays.\n\n{RESULTS_START}\nold table\n{RESULTS_END}\n\n## Speed\n\nfast\n"


def test_write_results_table(tmp_path: Path) -> None:
    page, reports = tmp_path / "results.md", tmp_path / "reports"
    page.write_text(PAGE, encoding="utf-8")
    write_metrics(reports, {**valid_metrics("01_eda"), "models": {}})
    assert write_results_table(page, reports)
    text = page.read_text(encoding="utf-8")
    assert "old table" not in text and "No model results yet" in text and "`01_eda`" in text
    assert text.startswith("# Course\n\n## Results\n\nProse stays.\n\n") and text.endswith(f"{RESULTS_END}\n\n## Speed\n\nfast\n")
    assert f"`{RESULTS_COMMAND}` from [`reports/metrics/*.json`](reports/metrics)" in text and "`reports/demo` is never used" in text

    metrics = valid_metrics()
    write_metrics(reports, metrics)
    assert write_results_table(page, reports)
    assert not write_results_table(page, reports)  # up to date: unchanged
    table = page.read_text(encoding="utf-8").split(RESULTS_START)[1].split(RESULTS_END)[0]
    rows = [line for line in table.splitlines() if line.startswith("| [")]
    assert len(rows) == 2 and "No model results" not in table
    seed, binary = metrics["models"]["seed_cnn"], metrics["models"]["binary_cnn"]
    low, high = seed["ci95"]["balanced_accuracy"]
    assert rows[0].startswith("| [03_custom_cnn](reports/03_custom_cnn.html) | seed_cnn | smoke | ham10000 | lesion_disjoint "
                              "| CPU test (2 cores) | ")
    balanced = f"{seed['balanced_accuracy']:.3f} ({low:.3f}–{high:.3f})"
    assert f"| {seed['accuracy']:.3f} | {balanced} | {seed['macro_auc']:.3f} |" in rows[0]
    assert rows[1].endswith(f"| {binary['auc']:.3f} | – |") and "| binary_cnn |" in rows[1]  # no balanced decision

    decided = {"tau": 0.8, "accuracy": 0.61, "balanced_accuracy": 0.55, "per_class_recall": {"nv": 0.6},
               "ci95": {"balanced_accuracy": [0.5, 0.6]}}
    write_metrics(reports, {**metrics, "models": {**metrics["models"], "seed_cnn": {**seed, "balanced_decision": decided}}})
    assert write_results_table(page, reports)
    table = page.read_text(encoding="utf-8").split(RESULTS_START)[1].split(RESULTS_END)[0]
    assert "| 0.610, 0.550 (0.500–0.600) |" in [line for line in table.splitlines() if "seed_cnn" in line][0]

    write_metrics(reports, {**metrics, "model_splits": {"binary_cnn": "official test folder"}})
    assert write_results_table(page, reports)
    table = page.read_text(encoding="utf-8").split(RESULTS_START)[1].split(RESULTS_END)[0]
    rows = [line for line in table.splitlines() if line.startswith("| [")]
    assert "| ham10000 | lesion_disjoint |" in rows[0] and "| ham10000 | official test folder |" in rows[1]


def test_results_table_ignores_demo_and_needs_markers(tmp_path: Path) -> None:
    page, reports = tmp_path / "results.md", tmp_path / "reports"
    write_metrics(reports / "demo", {**valid_metrics(), "data_source": "synthetic"})
    page.write_text(PAGE, encoding="utf-8")
    write_results_table(page, reports)
    assert "no real-data report has been published" in page.read_text(encoding="utf-8")
    page.write_text("# Course\n\nno markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="results:start"):
        write_results_table(page, reports)
