"""Run the notebook series with papermill into HTML reports, metrics JSON and an index page.

Real-data runs write to reports/; runs on the synthetic demo set write to reports/demo/ (git-ignored),
so a demo never replaces a report made from real data. Every file is written to a temporary
name and renamed on success: a failed notebook keeps its last good report and shows a failed row.
Metrics that break the JSON contract (helpers.results.validate_metrics) fail the run the same way.
After a real-data run the README's results table is regenerated (`python -m helpers.reports --readme`
does only that).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import CHECK_ENV, CHECK_MAX_IMAGES
from .data.source import MODELS_ENV, display_path, project_root, resolve_data_source
from .io import atomic_open, write_json
from .results import load_metrics, model_headline, validate_metrics, write_readme_results

METRICS_ENV = "SKIN_LESION_METRICS_OUT"
RUNS_FILE = "runs.json"


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
    """Execute one notebook into out_dir/<name>.html and out_dir/metrics/<name>.json; return its run record."""
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
            html_text = to_html(executed) if executed.exists() else f"<pre>{html.escape(record.get('error', ''))}</pre>"
        if record["status"] == "ok":
            with atomic_open(out_dir / f"{name}.html", "w", encoding="utf-8") as handle:
                handle.write(html_text)
            if metrics_tmp.exists():
                os.replace(metrics_tmp, out_dir / "metrics" / f"{name}.json")
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


def to_html(executed: Path) -> str:
    """Export an executed notebook to HTML: papermill's injected-parameters cell hidden, progress bars collapsed."""
    import nbformat
    from nbconvert import HTMLExporter
    from traitlets.config import Config as TraitletsConfig

    settings = TraitletsConfig()
    settings.TagRemovePreprocessor.enabled = True
    settings.TagRemovePreprocessor.remove_cell_tags = ("injected-parameters",)
    settings.CoalesceStreamsPreprocessor.enabled = True  # a progress bar shows its final state, not every redraw
    exporter = HTMLExporter(config=settings)
    body, _ = exporter.from_notebook_node(nbformat.read(str(executed), as_version=4))
    return without_machine_paths(body)


def without_machine_paths(text: str, root: Path | None = None) -> str:
    """text with the project's absolute path removed, so warnings in a published report name files relative to it."""
    return text.replace(f"{(root or project_root()).resolve()}/", "")


def _error_line(err: Exception) -> str:
    if hasattr(err, "ename"):  # papermill's PapermillExecutionError: the notebook's own exception
        return f"{err.ename}: {err.evalue} (cell {err.exec_count})"
    return f"{type(err).__name__}: {str(err).strip()[-1000:]}"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def load_runs(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The latest run record of each notebook in out_dir (empty if none yet)."""
    path = out_dir / RUNS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def headline(metrics: dict[str, Any]) -> str:
    """The best model's test metrics (balanced accuracy with its 95% CI first), or the notebook's own summary, as HTML."""
    models = metrics.get("models") or {}
    return html.escape(model_headline(models) if models else str(metrics.get("headline", "")))


def series_time(runs: dict[str, Any], notebooks: list[str]) -> str:
    """The summed wall time of the notebooks' latest successful runs, and which presets those runs used."""
    done = [runs[name] for name in notebooks if runs.get(name, {}).get("status") == "ok"]
    seconds = sum(run["wall_time_s"] for run in done)
    presets = sorted({run.get("parameters", {}).get("preset", "auto") for run in done})
    return (f"{len(done)} of {len(notebooks)} notebooks ran; their latest successful runs took {seconds:,.0f} s "
            f"({seconds / 60:.1f} min) in all, preset {' + '.join(presets) or '-'}")


def write_index(out_dir: Path, notebooks: list[str]) -> Path:
    """Write out_dir/index.html: one row per notebook with status, preset, data, hardware, time, metrics."""
    runs, metrics = load_runs(out_dir), load_metrics(out_dir)
    rows = []
    for name in notebooks:
        run, result = runs.get(name, {}), metrics.get(name, {})
        status = run.get("status", "not run")
        link = f'<a href="{name}.html">{name}</a>' if (out_dir / f"{name}.html").exists() else name
        if status == "failed":
            link += f' (<a href="{name}.failed.html">failed run</a>)'
        cells = [link, f'<span class="{status}">{status}</span>', result.get("preset", ""),
                 result.get("data_source", ""), result.get("device_name", result.get("device", "")),
                 f"{result.get('wall_time_s', run.get('wall_time_s', '')):}", headline(result),
                 html.escape(run.get("error", "")[:300])]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    rows.append(f"<tr><td><b>series</b></td><td colspan='7'>{html.escape(series_time(runs, notebooks))}</td></tr>")
    demo = "demo" in out_dir.parts[-1:]
    page = _INDEX.format(
        title="Skin-lesion course reports" + (" (SYNTHETIC DEMO DATA)" if demo else ""),
        warning=("<p class='warn'>These reports ran on the built-in synthetic demo set, not on real "
                 "skin images: their numbers demonstrate the pipeline only.</p>" if demo else ""),
        rows="\n".join(rows), created=_now(),
    )
    with atomic_open(out_dir / "index.html", "w", encoding="utf-8") as handle:
        handle.write(page)
    return out_dir / "index.html"


_INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}
table{{border-collapse:collapse}} .ok{{color:#070}} .failed{{color:#b00;font-weight:bold}} .warn{{color:#b00;font-weight:bold}}</style>
</head><body><h1>{title}</h1>{warning}
<table><tr><th>notebook</th><th>status</th><th>preset</th><th>data</th><th>hardware</th><th>wall time (s)</th><th>headline (test split)</th><th>error</th></tr>
{rows}
</table><p>Index written {created}.</p></body></html>
"""


def run_series(preset: str | None = None, only: list[str] | None = None, notebooks_dir: Path | None = None,
               root: Path | None = None, timeout: int | None = None, check: bool = False) -> int:
    """Execute every notebook (or those named in only) and rebuild the index; the number that failed.

    check: run the preset's code path on a few dozen images and at most 2 epochs per training
    (helpers.recipes.check_settings), writing reports and checkpoints under reports/check/ only.
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
        print("SYNTHETIC DEMO DATA: these reports go to reports/demo/ and never replace real-data reports.")
    parameters = {"preset": preset} if preset else {}
    failures = 0
    for notebook in notebooks:
        print(f"running {notebook.name} …", flush=True)
        record = execute(notebook, out_dir, parameters, timeout)
        runs = load_runs(out_dir)
        runs[notebook.stem] = record
        write_json(runs, out_dir / RUNS_FILE)
        failures += record["status"] != "ok"
        print(f"  {record['status']} in {record['wall_time_s']} s" + (f": {record.get('error', '')[:500]}" if record["status"] != "ok" else ""))
    index = write_index(out_dir, [nb.stem for nb in notebooks_in(notebooks_dir or root / "notebooks")])
    print(f"index: {index}")
    if not source.synthetic and not check:
        update_readme(root / "README.md", out_dir)
    return failures


def update_readme(readme: Path, reports_dir: Path) -> bool:
    """Regenerate the README's results table from reports_dir and say so; False when it could not."""
    if not readme.exists():
        print(f"README results not updated: no {readme.name} in {display_path(readme.parent)}")
        return False
    try:
        changed = write_readme_results(readme, reports_dir)
    except ValueError as err:
        print(f"README results not updated: {err}")
        return False
    print(f"README results table {'regenerated' if changed else 'already up to date'} "
          f"from {display_path(reports_dir / 'metrics')}/*.json")
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m helpers.reports [--preset P] [--only 01 02] [--timeout S] | --readme."""
    from .cli import run

    return run(_main, argv)


def _main(argv: list[str]) -> int:
    from .cli import add_debug_argument, positive_int

    parser = argparse.ArgumentParser(prog="python -m helpers.reports", description=__doc__)
    parser.add_argument("--preset", choices=("auto", "smoke", "cpu", "gpu"), help="override every notebook's preset")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name contains one of these")
    parser.add_argument("--timeout", type=positive_int, help="per-cell timeout in seconds")
    parser.add_argument("--check", action="store_true",
                        help="prove the preset's code path (models, input sizes, batch sizes, schedules, grid) on a few "
                             "dozen images, 2 epochs per training; output under reports/check/ only")
    parser.add_argument("--readme", action="store_true",
                        help="only regenerate README.md's results table from reports/metrics/*.json (runs no notebook)")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.readme:
        root = project_root()
        return 0 if update_readme(root / "README.md", report_dir(False, root)) else 1
    failures = run_series(args.preset, args.only, timeout=args.timeout, check=args.check)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
