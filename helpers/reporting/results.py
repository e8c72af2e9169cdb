"""The metrics JSON contract every notebook follows, the results table (docs/results.md) generated from those JSON
files, the README's goals table, and what the reports index shows as each notebook's headline.

A notebook hands its metrics to the report runner (helpers.reports), which publishes them as
reports/metrics/<notebook>.json only when `validate_metrics` finds no problem. The results table of
docs/results.md is regenerated from those files (`python -m helpers.reports --results-table`), never edited by hand.

Two optional top-level keys feed the reports index (helpers.reporting.site):

- `"summary"`: one line of text saying what the notebook shows;
- `"headline"`: either `{"model": <a key of models>, "metric": "balanced_accuracy", "test_set": "<human name of
  the test set>"}` (metric optional, any metric of that model's entry; test_set required), or a plain-text line
  for a notebook whose point is not one model's score (01's data overview, 02's leak measurement).

Without a declaration `index_headline` falls back to the best balanced accuracy among the models on the
notebook's main test set: the test set with the most test images (`model_splits[model]`, else `split`),
never ranking models tested on different sets.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.io import atomic_open

TEXT_FIELDS = ("notebook", "preset", "device", "device_name", "data_source", "split", "created")
POINT_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
BINARY_METRICS = ("sensitivity", "specificity", "auc")
# The scaling study (06) adds one row per run and one power-law fit per arm.
SCALING_ROW_KEYS = ("model", "pretrained", "parameters", "flops_per_image", "image_size", "fraction", "n_train",
                    "n_train_lesions", "seed", "epochs_run", "best_epoch", "wall_time_s", "train_images_seen",
                    "train_compute_flops", "accuracy", "balanced_accuracy", "macro_auc", "error")
SCALING_FRACTIONS = ("fraction", "accuracy", "balanced_accuracy", "macro_auc", "error")
SCALING_COUNTS = ("parameters", "flops_per_image", "image_size", "n_train", "n_train_lesions", "train_images_seen")
FIT_KEYS = ("model", "pretrained", "a", "b", "c", "n_points", "note")
RESULTS_START = "<!-- results:start -->"
RESULTS_END = "<!-- results:end -->"
RESULTS_PAGE = Path("docs") / "results.md"  # relative to the project root
RESULTS_COMMAND = "python -m helpers.reports --results-table"
NO_VALUE = "–"
_ABSENT = object()
HEADLINE_METRIC = "balanced_accuracy"
METRIC_NAMES = {"balanced_accuracy": "balanced accuracy", "accuracy": "accuracy", "macro_f1": "macro F1",
                "macro_auc": "macro AUC", "auc": "AUC", "sensitivity": "sensitivity", "specificity": "specificity"}
DATA_NAMES = {"ham10000": "HAM10000", "melanoma10k": "melanoma10k", "synthetic": "synthetic demo set"}
SPLIT_NAMES = {"lesion_disjoint": "lesion-disjoint test split", "image_level": "image-level test split",
               "dermamnist_official": "official DermaMNIST test split"}
GOALS_START = "<!-- goals:start -->"
GOALS_END = "<!-- goals:end -->"
GOAL_COLUMNS = ("notebook", "goal", "reached", "met?")

# ---------------------------------------------------------------- the contract


def validate_metrics(metrics: Any, name: str) -> list[str]:
    """Problems that keep a notebook's metrics from following the JSON contract (empty when valid)."""
    if not isinstance(metrics, Mapping):
        return [f"metrics must be a mapping, got {type(metrics).__name__}"]
    problems = _header_problems(metrics, name)
    models = metrics.get("models", _ABSENT)
    if not isinstance(models, Mapping):
        return problems + [_wrong("models", models, "a mapping from model name to its metrics")]
    for model, entry in models.items():
        problems += [f"models[{model!r}]: {problem}" for problem in _model_problems(entry)]
    problems += _index_problems(metrics, models)
    return problems + (_scaling_problems(metrics) if name == "06_scaling_study" else [])


def _index_problems(metrics: Mapping[str, Any], models: Mapping[str, Any]) -> list[str]:
    """Problems in the optional keys the reports index reads: summary (one line) and headline (text or a declaration)."""
    problems = []
    summary = metrics.get("summary", _ABSENT)
    if summary is not _ABSENT and not (_is_text(summary) and "\n" not in summary.strip()):
        problems.append(_wrong("summary", summary, "one non-empty line of text"))
    headline = metrics.get("headline", _ABSENT)
    if isinstance(headline, Mapping):
        problems += [f"headline: {problem}" for problem in _declared_headline_problems(headline, models)]
    elif headline is not _ABSENT and not _is_text(headline):
        problems.append(_wrong("headline", headline, 'a line of text or {"model": …, "metric": …, "test_set": …}'))
    return problems


def _declared_headline_problems(headline: Mapping[str, Any], models: Mapping[str, Any]) -> list[str]:
    """Problems in a headline declaration: model a key of models, metric a number of its entry, test_set a name."""
    model, metric = headline.get("model", _ABSENT), headline.get("metric", HEADLINE_METRIC)
    if model not in models:
        return [_wrong("model", model, f"a key of models ({', '.join(map(repr, models)) or 'there are none'})")]
    problems = []
    if metric not in METRIC_NAMES or not _is_number((models[model] or {}).get(metric)):
        problems.append(_wrong("metric", metric, f"a metric with a value in models[{model!r}]"))
    if not _is_text(headline.get("test_set")):
        problems.append(_wrong("test_set", headline.get("test_set", _ABSENT), "the test set's name, for readers"))
    return problems


def _header_problems(metrics: Mapping[str, Any], name: str) -> list[str]:
    """Problems in the top-level fields: texts, notebook name, image count, wall time, creation time."""
    problems = [_wrong(key, metrics.get(key, _ABSENT), "a non-empty string")
                for key in TEXT_FIELDS if not _is_text(metrics.get(key))]
    if _is_text(metrics.get("notebook")) and metrics["notebook"] != name:
        problems.append(f"notebook is {metrics['notebook']!r} but the file is {name!r}")
    if not _is_count(metrics.get("n_images")):
        problems.append(_wrong("n_images", metrics.get("n_images", _ABSENT), "an integer > 0"))
    wall = metrics.get("wall_time_s", _ABSENT)
    if not (_is_number(wall) and wall >= 0):
        problems.append(_wrong("wall_time_s", wall, "a number of seconds >= 0"))
    if _is_text(metrics.get("created")) and not _is_timestamp(metrics["created"]):
        problems.append(_wrong("created", metrics["created"], "an ISO 8601 date and time"))
    return problems


def _model_problems(entry: Any) -> list[str]:
    """Problems in one model's entry: metrics, per-class recall, confidence intervals, n_test."""
    if not isinstance(entry, Mapping):
        return [f"must be a mapping of metrics, got {type(entry).__name__}"]
    required = POINT_METRICS + (BINARY_METRICS if _is_binary(entry) else ())
    problems = [_wrong(key, entry.get(key, _ABSENT), "a number in [0, 1] or null")
                for key in required if not _is_fraction_or_none(entry.get(key, _ABSENT))]
    if "threshold" in entry and not _is_fraction_or_none(entry["threshold"]):
        problems.append(_wrong("threshold", entry["threshold"], "a number in [0, 1]"))
    problems += _recall_problems(entry.get("per_class_recall", _ABSENT))
    problems += _ci_problems(entry.get("ci95", _ABSENT), required)
    if "balanced_decision" in entry:
        problems += [f"balanced_decision: {problem}" for problem in _decision_problems(entry["balanced_decision"])]
    if not _is_count(entry.get("n_test")):
        problems.append(_wrong("n_test", entry.get("n_test", _ABSENT), "an integer > 0"))
    return problems


def _decision_problems(decision: Any) -> list[str]:
    """Problems in a model's optional balanced decision: tau >= 0, accuracies, per-class recall, the CI."""
    if not isinstance(decision, Mapping):
        return [f"must be a mapping, got {type(decision).__name__}"]
    problems = [] if _is_number(decision.get("tau")) and decision["tau"] >= 0 else [
        _wrong("tau", decision.get("tau", _ABSENT), "a number >= 0")]
    problems += [_wrong(key, decision.get(key, _ABSENT), "a number in [0, 1] or null")
                 for key in ("accuracy", "balanced_accuracy") if not _is_fraction_or_none(decision.get(key, _ABSENT))]
    problems += _recall_problems(decision.get("per_class_recall", _ABSENT))
    return problems + _ci_problems(decision.get("ci95", _ABSENT), ("balanced_accuracy",))


def _recall_problems(recall: Any) -> list[str]:
    """Problems in per_class_recall: a mapping from class name to a fraction or null."""
    if not isinstance(recall, Mapping) or not recall:
        return [_wrong("per_class_recall", recall, "a non-empty mapping {class: recall}")]
    return [_wrong(f"per_class_recall[{dx!r}]", value, "a number in [0, 1] or null")
            for dx, value in recall.items() if not _is_fraction_or_none(value)]


def _ci_problems(ci95: Any, required: tuple[str, ...]) -> list[str]:
    """Problems in ci95: an interval [low, high] for every required metric, each end a fraction or null, low <= high."""
    if not isinstance(ci95, Mapping):
        return [_wrong("ci95", ci95, "a mapping {metric: [low, high]}")]
    problems = [f"ci95 has no interval for {key}" for key in required if key not in ci95]
    for key, interval in ci95.items():
        if not (isinstance(interval, (list, tuple)) and len(interval) == 2
                and all(_is_fraction_or_none(end) for end in interval)):
            problems.append(_wrong(f"ci95[{key!r}]", interval, "[low, high] with numbers in [0, 1] or null"))
        elif None not in interval and interval[0] > interval[1]:
            problems.append(f"ci95[{key!r}] has low {interval[0]} > high {interval[1]}")
    return problems


def _scaling_problems(metrics: Mapping[str, Any]) -> list[str]:
    """Problems in the scaling study's `scaling` (one row per run) and `fits` (one power law per arm) lists."""
    problems = []
    for key, required in (("scaling", SCALING_ROW_KEYS), ("fits", FIT_KEYS)):
        rows = metrics.get(key, _ABSENT)
        if not isinstance(rows, list) or not rows:
            problems.append(_wrong(key, rows, "a non-empty list of rows"))
            continue
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                problems.append(f"{key}[{i}] must be a mapping, got {type(row).__name__}")
                continue
            problems += [f"{key}[{i}]: missing {field}" for field in required if field not in row]
            problems += [f"{key}[{i}]: {problem}" for problem in _scaling_value_problems(key, row)]
    return problems


def _scaling_value_problems(key: str, row: Mapping[str, Any]) -> list[str]:
    """Values of a scaling row (metrics in [0, 1], counts > 0) or of a fit (a, b, c numbers or null, note text)."""
    if key == "scaling":
        fractions = [_wrong(f, row[f], "a number in [0, 1] or null") for f in SCALING_FRACTIONS
                     if f in row and not _is_fraction_or_none(row[f])]
        return fractions + [_wrong(f, row[f], "an integer > 0") for f in SCALING_COUNTS if f in row and not _is_count(row[f])]
    numbers = [_wrong(f, row[f], "a number or null") for f in ("a", "b", "c")
               if f in row and not (row[f] is None or _is_number(row[f]))]
    if "note" in row and not isinstance(row["note"], str):
        numbers.append(_wrong("note", row["note"], "a string (empty when the fit is sound)"))
    return numbers


def _is_binary(entry: Mapping[str, Any]) -> bool:
    """A binary task's entry: two classes, or any of sensitivity, specificity, auc present."""
    recall = entry.get("per_class_recall")
    return any(key in entry for key in BINARY_METRICS) or (isinstance(recall, Mapping) and len(recall) == 2)


def _wrong(key: str, value: Any, expected: str) -> str:
    """A problem line: the key is missing, or its value is not what was expected."""
    if value is _ABSENT:
        return f"missing {key}"
    return f"{key} must be {expected}, got {json.dumps(value, default=str)[:60]}"


def _is_number(value: Any) -> bool:
    """A finite int or float (booleans excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_fraction_or_none(value: Any) -> bool:
    """None, or a finite number in [0, 1]."""
    return value is None or (_is_number(value) and 0.0 <= value <= 1.0)


def _is_count(value: Any) -> bool:
    """An int > 0 (booleans excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_text(value: Any) -> bool:
    """A non-empty string."""
    return isinstance(value, str) and bool(value.strip())


def _is_timestamp(value: str) -> bool:
    """Whether value parses as an ISO 8601 date and time."""
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- reading and formatting results


def load_metrics(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every metrics JSON of out_dir/metrics, keyed by notebook name."""
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((out_dir / "metrics").glob("*.json"))}


def fmt(value: Any) -> str:
    """A metric with 3 decimals, or a dash when it is missing or undefined."""
    return f"{value:.3f}" if _is_number(value) else NO_VALUE


def fmt_ci(entry: Mapping[str, Any], metric: str) -> str:
    """The 95% interval of a metric as 'low–high', or a dash."""
    interval = (entry.get("ci95") or {}).get(metric)
    if not (isinstance(interval, (list, tuple)) and len(interval) == 2 and all(map(_is_number, interval))):
        return NO_VALUE
    return f"{fmt(interval[0])}–{fmt(interval[1])}"


def auc_of(entry: Mapping[str, Any]) -> Any:
    """The AUC to show: a binary model's AUC, else the macro one-vs-rest AUC."""
    return entry.get("auc") if _is_binary(entry) else entry.get("macro_auc")


def best_model(models: Mapping[str, Mapping[str, Any]]) -> tuple[str, Mapping[str, Any]]:
    """The model with the highest balanced accuracy (undefined values count lowest)."""
    def score(item: tuple[str, Mapping[str, Any]]) -> float:
        value = item[1].get("balanced_accuracy") if isinstance(item[1], Mapping) else None
        return value if _is_number(value) else -1.0

    return max(models.items(), key=score)


def model_headline(models: Mapping[str, Mapping[str, Any]]) -> str:
    """One line of the best model's test metrics, balanced accuracy first with its 95% CI."""
    name, entry = best_model(models)
    return model_line(name, entry) + (f" (best of {len(models)} models)" if len(models) > 1 else "")


def model_line(name: str, entry: Mapping[str, Any], metric: str = HEADLINE_METRIC) -> str:
    """One line of a model's test metrics: `metric` first with its 95% CI, then the others and n_test."""
    auc_key = "auc" if _is_binary(entry) else "macro_auc"
    others = [key for key in ("balanced_accuracy", "accuracy", auc_key) if key != metric]
    parts = [f"{METRIC_NAMES.get(metric, metric)} {fmt(entry.get(metric))} (95% CI {fmt_ci(entry, metric)})"]
    parts += [f"{METRIC_NAMES[key]} {fmt(entry.get(key))}" for key in others]
    return f"{name}: {', '.join(parts)}, n_test {entry.get('n_test', NO_VALUE)}"


# ---------------------------------------------------------------- the index headline


@dataclass(frozen=True)
class Headline:
    """A notebook's headline on the index: one line, and the model and test set behind it (None for a text line)."""

    text: str
    model: str | None = None
    test_set: str | None = None
    n_test: int | None = None
    declared: bool = False


def test_set_name(metrics: Mapping[str, Any], model: str) -> str:
    """The name of the test set a model was measured on: model_splits[model], else the data source and split."""
    named = (metrics.get("model_splits") or {}).get(model)
    if _is_text(named):
        return named
    source, split = str(metrics.get("data_source", "")), str(metrics.get("split", ""))
    return f"{DATA_NAMES.get(source, source)} {SPLIT_NAMES.get(split, split)}".strip()


def main_test_models(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The models measured on the notebook's main test set: the one with the most test images (the first on a tie)."""
    by_set: dict[str, dict[str, Mapping[str, Any]]] = {}
    for name, entry in (metrics.get("models") or {}).items():
        if isinstance(entry, Mapping):
            by_set.setdefault(test_set_name(metrics, name), {})[name] = entry
    if not by_set:
        return {}
    return max(by_set.values(), key=lambda group: max(_count_or_zero(e.get("n_test")) for e in group.values()))


def index_headline(metrics: Mapping[str, Any]) -> Headline | None:
    """The headline the index shows: the declared model, else a text headline, else the best on the main test set."""
    models, declared = metrics.get("models") or {}, metrics.get("headline")
    if isinstance(declared, Mapping) and declared.get("model") in models:
        name, metric = declared["model"], declared.get("metric", HEADLINE_METRIC)
        entry = models[name]
        return Headline(model_line(name, entry, metric), name, declared.get("test_set") or test_set_name(metrics, name),
                        entry.get("n_test"), declared=True)
    if _is_text(declared):
        return Headline(declared.strip())
    group = main_test_models(metrics)
    if not group:
        return None
    name, entry = best_model(group)
    return Headline(model_headline(group), name, test_set_name(metrics, name), entry.get("n_test"))


def _count_or_zero(value: Any) -> int:
    return value if _is_count(value) else 0


# ---------------------------------------------------------------- the README goals table


@dataclass(frozen=True)
class Goal:
    """One row of the README's goals table: the notebook's number (or "all"), the goal, what was reached, met?."""

    notebook: str
    goal: str
    reached: str
    met: str

    @property
    def status(self) -> str:
        """met, not-met or partly, from how the met? cell starts."""
        text = self.met.strip().lower()
        return "met" if text.startswith("yes") else "not-met" if text.startswith("no") else "partly"


def read_goals(readme: Path) -> list[Goal]:
    """The rows of the goals table between the README's goals markers (columns notebook | goal | reached | met?)."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(GOALS_START), text.find(GOALS_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme.name}: no goals table between {GOALS_START} and {GOALS_END}")
    lines = [line.strip() for line in text[start + len(GOALS_START):end].splitlines() if line.strip().startswith("|")]
    rows = [_table_cells(line) for line in lines if not re.fullmatch(r"\|[\s:|-]*\|?", line)]
    if not rows or [cell.split(" (")[0].lower() for cell in rows[0]] != list(GOAL_COLUMNS):
        raise ValueError(f"{readme.name}: the goals table needs the columns {' | '.join(GOAL_COLUMNS)}")
    return [Goal(*cells) for cells in rows[1:] if len(cells) == len(GOAL_COLUMNS)]


def _table_cells(line: str) -> list[str]:
    """The cells of a markdown table row (escaped pipes kept inside cells)."""
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip().replace("\\|", "|") for cell in cells]


# ---------------------------------------------------------------- the results table (docs/results.md)

TABLE_HEADER = ("| notebook | model | preset | data | split | hardware | n_test | accuracy "
                "| balanced accuracy (95% CI) | macro AUC (binary: AUC) "
                "| balanced decision: accuracy, balanced accuracy (95% CI) |\n"
                "|---|---|---|---|---|---|--:|--:|--:|--:|--:|")


def results_markdown(reports_dir: Path, base: Path) -> str:
    """The results block from reports_dir/metrics/*.json, links relative to base (the page's folder): a table row per
    (notebook, model), or a sentence."""
    metrics = {name: result for name, result in load_metrics(reports_dir).items()
               if result.get("data_source") != "synthetic"}
    rows = [_table_row(name, result, model, entry, _relative(reports_dir / f"{name}.html", base))
            for name, result in metrics.items() for model, entry in (result.get("models") or {}).items()]
    body = TABLE_HEADER + "\n" + "\n".join(rows) if rows else _no_models(metrics)
    source = _relative(reports_dir / "metrics", base)
    return (f"{body}\n\n*Generated by `{RESULTS_COMMAND}` from [`{source}/*.json`]({source}) (real-data runs only; "
            f"`reports/demo` is never used). Test-split metrics; 95% CIs from resampling lesions.*")


def _table_row(name: str, result: Mapping[str, Any], model: str, entry: Mapping[str, Any], link: str) -> str:
    """One markdown table row of a notebook's model."""
    split = (result.get("model_splits") or {}).get(model, result.get("split"))  # 05 tests models on different sets
    cells = [f"[{name}]({link})", model, result.get("preset"), result.get("data_source"), split,
             result.get("device_name", result.get("device")), entry.get("n_test"), fmt(entry.get("accuracy")),
             f"{fmt(entry.get('balanced_accuracy'))} ({fmt_ci(entry, 'balanced_accuracy')})", fmt(auc_of(entry)),
             balanced_decision_cell(entry)]
    return "| " + " | ".join(_cell(value) for value in cells) + " |"


def balanced_decision_cell(entry: Mapping[str, Any]) -> str | None:
    """"accuracy, balanced accuracy (CI)" of the model's balanced decision (helpers.evaluation.decision), None when not recorded."""
    decision = entry.get("balanced_decision")
    if not isinstance(decision, Mapping):
        return None
    return (f"{fmt(decision.get('accuracy'))}, {fmt(decision.get('balanced_accuracy'))} "
            f"({fmt_ci(decision, 'balanced_accuracy')})")


def _no_models(metrics: Mapping[str, Any]) -> str:
    """The sentence shown instead of a table while no report has models."""
    if not metrics:
        return "No model results yet: no real-data report has been published."
    names = ", ".join(f"`{name}`" for name in metrics)
    return f"No model results yet: the published reports ({names}) have no models."


def _cell(value: Any) -> str:
    """A table cell's text: missing values as a dash, pipes escaped."""
    return NO_VALUE if value is None or value == "" else str(value).replace("|", "\\|").replace("\n", " ")


def _relative(path: Path, base: Path) -> str:
    """path relative to base, with forward slashes (as a markdown link)."""
    return Path(os.path.relpath(path, base)).as_posix()


def replace_results(text: str, block: str) -> str:
    """text with everything between the results markers replaced by block."""
    start, end = text.find(RESULTS_START), text.find(RESULTS_END)
    if start < 0 or end < start or text.count(RESULTS_START) != 1 or text.count(RESULTS_END) != 1:
        raise ValueError(f"the results page needs one {RESULTS_START} and, after it, one {RESULTS_END}")
    return f"{text[:start + len(RESULTS_START)]}\n{block}\n{text[end:]}"


def write_results_table(page: Path, reports_dir: Path) -> bool:
    """Regenerate the results table of page (docs/results.md) from reports_dir/metrics/*.json; whether page changed."""
    text = page.read_text(encoding="utf-8")
    updated = replace_results(text, results_markdown(reports_dir, page.parent))
    if updated == text:
        return False
    with atomic_open(page, "w", encoding="utf-8") as handle:
        handle.write(updated)
    return True
