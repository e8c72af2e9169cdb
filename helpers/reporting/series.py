"""The notebook series run with papermill into reports (python -m helpers.reports is its command line; its docstring
says what is written where).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ..course.config import resolve_preset
from ..course.recipes import CHECK_ENV, CHECK_MAX_IMAGES
from ..course.cost.series import CALIBRATION_ENV
from ..data.source import MODELS_ENV, display_path, project_root, resolve_data_source
from ..core.io import atomic_open, write_json
from ..course.recipes import sizing_for
from .results import RESULTS_PAGE, read_goals, validate_metrics, write_results_table
from .site import RUNS_FILE, as_document, build_site, load_runs, notebook_images_to_jpeg, offline

METRICS_ENV = "SKIN_LESION_METRICS_OUT"
HIDDEN_CELL_TAGS = ("injected-parameters", "colab-bootstrap")  # in the HTML only: the .ipynb keeps every cell


def notebooks_in(folder: Path) -> list[Path]:
    """The numbered notebooks of the series (NN_name.ipynb), in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def report_dir(synthetic: bool, root: Path | None = None, check: bool = False) -> Path:
    """reports/ for real data, reports/demo/ for the synthetic demo set, reports/check/ for check runs (git-ignored)."""
    base = (root or project_root()) / "reports"
    if check:
        return base / "check"
    return base / "demo" if synthetic else base


def save_metrics(metrics: dict[str, Any]) -> None:
    """Hand a notebook's metrics to the report runner (via $SKIN_LESION_METRICS_OUT); no-op when run by hand."""
    target = os.environ.get(METRICS_ENV)
    if not target:
        print("metrics not saved: this notebook is not being run by helpers.reports")
        return
    write_json(metrics, target)
    print(f"metrics saved for reports/metrics/{metrics.get('notebook', '')}.json")


def metrics_header(config: Any, notebook: str, n_images: int, split: str, started: float) -> dict[str, Any]:
    """The top-level fields every notebook's metrics JSON shares (models and extras are added by the notebook)."""
    return {
        "notebook": notebook, "preset": config.preset, "device": config.device, "device_name": config.hardware,
        "data_source": config.data_source, "n_images": int(n_images), "split": split,
        "wall_time_s": round(time.time() - started, 1), "created": _now(),
        "config": {**config.to_dict(), "data_root": display_path(config.data_root)}, "models": {},
    }


def execute(notebook: Path, out_dir: Path, parameters: dict[str, Any], timeout: int | None = None) -> dict[str, Any]:
    """Execute one notebook into out_dir/<name>.html, <name>.ipynb and metrics/<name>.json; return its run record."""
    import papermill

    name = notebook.stem
    started = time.time()
    record: dict[str, Any] = {"notebook": name, "started": _now(), "parameters": parameters}
    metrics_tmp = out_dir / "metrics" / f".{name}.json.running"
    metrics_tmp.parent.mkdir(parents=True, exist_ok=True)
    metrics_tmp.unlink(missing_ok=True)
    os.environ[METRICS_ENV] = str(metrics_tmp)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            executed = Path(scratch) / notebook.name
            try:
                papermill.execute_notebook(
                    str(notebook), str(executed), parameters=parameters, kernel_name="python3",
                    cwd=str(notebook.parent), progress_bar=False, execution_timeout=timeout,
                )
                record["status"] = "ok"
            except Exception as err:  # the notebook failed: keep its last good report
                record.update(status="failed", error=_error_line(err))
            problems = handed_metrics_problems(metrics_tmp, name) if record["status"] == "ok" else []
            if problems:  # refuse metrics that break the contract, as a failed run
                record.update(status="failed", error="metrics break the JSON contract: " + "; ".join(problems))
            kept = published_notebook(executed, notebook, out_dir / notebook.name) if executed.exists() else None
            html_text = (to_html(kept) if kept is not None
                         else as_document(f"<pre>{html.escape(record.get('error', ''))}</pre>", f"{name} (failed run)"))
        if record["status"] == "ok":
            if kept is not None:
                write_notebook(kept, out_dir / f"{name}.ipynb")
            with atomic_open(out_dir / f"{name}.html", "w", encoding="utf-8") as handle:
                handle.write(html_text)
            if metrics_tmp.exists():
                os.replace(metrics_tmp, out_dir / "metrics" / f"{name}.json")
            (out_dir / f"{name}.failed.html").unlink(missing_ok=True)  # an earlier failure's page no longer applies
        else:
            with atomic_open(out_dir / f"{name}.failed.html", "w", encoding="utf-8") as handle:
                handle.write(html_text)
    finally:
        os.environ.pop(METRICS_ENV, None)
        metrics_tmp.unlink(missing_ok=True)
    record["wall_time_s"] = round(time.time() - started, 1)
    return record


def handed_metrics_problems(path: Path, name: str) -> list[str]:
    """Contract problems of the metrics a notebook handed over at path (none when it handed over none)."""
    if not path.exists():
        return []
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        return [f"not valid JSON ({err})"]
    return validate_metrics(metrics, name)


def published_notebook(executed: Path, source: Path, target: Path) -> Any:
    """papermill's output notebook as published: large PNG outputs as JPEG, papermill's paths relative to the project."""
    import nbformat

    node = nbformat.read(str(executed), as_version=4)
    notebook_images_to_jpeg(node)
    paths = node.metadata.get("papermill")
    if paths is not None:  # absolute paths of this machine and a scratch folder: name the project's files instead
        paths["input_path"] = display_path(source)
        paths["output_path"] = display_path(target)
    return node


def write_notebook(node: Any, path: Path) -> None:
    """Write a notebook node to path atomically, the project's absolute path removed from its outputs."""
    import nbformat

    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(without_machine_paths(nbformat.writes(node)))


def to_html(executed: Path | Any) -> str:
    """Export an executed notebook (a path or a node) to self-contained HTML: injected-parameters and Colab setup
    cells hidden, progress bars collapsed, no script or stylesheet from the network (the site header comes later)."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config as TraitletsConfig

    settings = TraitletsConfig()
    settings.TagRemovePreprocessor.enabled = True
    settings.TagRemovePreprocessor.remove_cell_tags = HIDDEN_CELL_TAGS
    settings.CoalesceStreamsPreprocessor.enabled = True  # a progress bar shows its final state, not every redraw
    exporter = HTMLExporter(config=settings)
    node = nbformat.read(str(executed), as_version=4) if isinstance(executed, (str, Path)) else executed
    body, _ = exporter.from_notebook_node(node)
    return offline(without_machine_paths(body))


def without_machine_paths(text: str, root: Path | None = None) -> str:
    """text with the project's absolute path removed, so warnings in a published report name files relative to it."""
    return text.replace(f"{(root or project_root()).resolve()}/", "")


def _error_line(err: Exception) -> str:
    if hasattr(err, "ename"):  # papermill's PapermillExecutionError: the notebook's own exception
        return f"{err.ename}: {err.evalue} (cell {err.exec_count})"
    return f"{type(err).__name__}: {str(err).strip()[-1000:]}"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_series(preset: str | None = None, only: list[str] | None = None, notebooks_dir: Path | None = None,
               root: Path | None = None, timeout: int | None = None, check: bool = False) -> int:
    """Execute every notebook (or those named in only) and rebuild the index; the number that failed.

    check: run the preset's code path on a few dozen images and at most 2 epochs per training
    (helpers.course.recipes.check_settings), writing reports and checkpoints under reports/check/ only.
    """
    root = root or project_root()
    notebooks = notebooks_in(notebooks_dir or root / "notebooks")
    if only:
        notebooks = [nb for nb in notebooks if any(key in nb.stem for key in only)]
    source = resolve_data_source()
    out_dir = report_dir(source.synthetic, root, check)
    out_dir.mkdir(parents=True, exist_ok=True)
    if check:
        os.environ[CHECK_ENV] = "1"
        os.environ[MODELS_ENV] = str(out_dir / "models")  # a check never replaces a trained checkpoint
        print(f"CHECK RUN of preset {preset or 'auto'}: every notebook on a tiny lesion-grouped subset (max_images "
              f"{CHECK_MAX_IMAGES}, at least 15 images per class), at most 2 epochs per training, one run per distinct "
              "configuration of the scaling grid")
    print(f"data: {source.kind} in {display_path(source.root)} ({source.origin}); reports go to {display_path(out_dir)}")
    if source.synthetic and not check:
        print("SYNTHETIC DEMO DATA: these reports go to reports/demo/ and never replace real-data reports."
              + (" Every notebook is sized to show that its cells work, in minutes (helpers.course.recipes.DEMO): its numbers "
                 "mean nothing." if sizing_for(resolve_preset(preset or "auto"), source.kind) else ""))
    parameters = {"preset": preset} if preset else {}
    estimates = record_calibration(out_dir, preset, [nb.stem for nb in notebooks]) if not source.synthetic and not check else {}
    failures = 0
    for notebook in notebooks:
        print(f"running {notebook.name} …", flush=True)
        record = execute(notebook, out_dir, parameters, timeout)
        if notebook.stem in estimates:
            record["estimate_minutes"] = estimates[notebook.stem]
        runs = load_runs(out_dir)
        runs[notebook.stem] = record
        write_json(runs, out_dir / RUNS_FILE)
        failures += record["status"] != "ok"
        print(f"  {record['status']} in {record['wall_time_s']} s" + (f": {record.get('error', '')[:500]}" if record["status"] != "ok" else ""))
    os.environ.pop(CALIBRATION_ENV, None)  # the series' calibration served its notebooks only
    real = not source.synthetic and not check
    site(out_dir, [nb.stem for nb in notebooks_in(notebooks_dir or root / "notebooks")], root / "README.md" if real else None)
    if real:
        update_results_table(root / RESULTS_PAGE, out_dir)
    return failures


def record_calibration(out_dir: Path, preset: str | None, notebooks: list[str]) -> dict[str, list[float]]:
    """Calibrate this machine for the series' plans into out_dir/calibration.json, point every notebook's estimate at
    it ($SKIN_LESION_CALIBRATION) and return each notebook's estimated minutes (low, high) from it."""
    from ..course.cost.calibration import calibrate, write_calibration
    from ..course.cost.estimate import estimate_notebook
    from ..course.cost.series import CALIBRATION_ENV, SERIES_CALIBRATION, plans_here, target_for, work_of
    from ..core.machine import hardware_description

    from ..course.config import resolve_config

    plans = plans_here(resolve_config(preset or "auto"), notebooks)
    print(f"calibrating this machine for the cost model ({len(work_of(plans))} model/size/batch entries) …", flush=True)
    fresh = calibrate(work_of(plans), hardware_description(), progress=False)
    path = write_calibration(kept_with(fresh, out_dir / SERIES_CALIBRATION), out_dir / SERIES_CALIBRATION)
    os.environ[CALIBRATION_ENV] = str(path)
    target = target_for("this", plans)
    estimates = {plan.notebook: [round(m, 2) for m in estimate_notebook(plan, target).minutes] for plan in plans}
    print("estimated minutes: " + ", ".join(f"{name} {low:.1f}–{high:.1f}" for name, (low, high) in estimates.items()))
    return estimates


def kept_with(fresh: Any, path: Path) -> Any:
    """fresh, plus the entries of the calibration at path that fresh did not measure when both come from the same
    machine: a run of some notebooks (--only) keeps what the series' other notebooks were estimated from."""
    from ..course.cost.calibration import Calibration, read_calibration

    try:
        old = read_calibration(path) if path.is_file() else None
    except ValueError:
        old = None
    if old is None or old.hardware != fresh.hardware:
        return fresh
    measured = {(e.model, e.image_size, e.batch_size, e.train_s_per_image is None) for e in fresh.entries}
    kept = tuple(e for e in old.entries if (e.model, e.image_size, e.batch_size, e.train_s_per_image is None) not in measured)
    return Calibration(**{**fresh.__dict__, "entries": kept + fresh.entries})


def site(out_dir: Path, notebooks: list[str], readme: Path | None) -> list[Path]:
    """Rebuild the site in out_dir (headers, contents, index.html; goals from readme) and say what changed; runs nothing."""
    goals = []
    if readme is not None:
        try:
            goals = read_goals(readme)
        except (OSError, ValueError) as err:
            print(f"goals not shown on the index: {err}")
    changed = build_site(out_dir, notebooks, goals)
    print(f"site in {display_path(out_dir)}: " + (", ".join(p.name for p in changed) + " rebuilt" if changed else "up to date"))
    return changed


def update_results_table(page: Path, reports_dir: Path) -> bool:
    """Regenerate the results table of page (docs/results.md) from reports_dir and say so; False when it could not."""
    if not page.exists():
        print(f"results table not updated: no {page.name} in {display_path(page.parent)}")
        return False
    try:
        changed = write_results_table(page, reports_dir)
    except ValueError as err:
        print(f"results table not updated: {display_path(page)}: {err}")
        return False
    print(f"results table of {display_path(page)} {'regenerated' if changed else 'already up to date'} "
          f"from {display_path(reports_dir / 'metrics')}/*.json")
    return True
