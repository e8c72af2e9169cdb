"""Run the notebook series with papermill into HTML reports, executed notebooks, metrics JSON and an index page.

Real-data runs write to reports/; runs on the synthetic demo set write to reports/demo/ (git-ignored),
so a demo never replaces a report made from real data. Each notebook gives reports/NN_name.html and,
beside it, the executed notebook reports/NN_name.ipynb (papermill's output, injected-parameters cell
kept; PNG outputs above 150 kB as JPEG in both). Every file is written to a temporary
name and renamed on success: a failed notebook keeps its last good report and shows a failed row.
Metrics that break the JSON contract (helpers.reporting.results.validate_metrics) fail the run the same way.
After a run the site is rebuilt (helpers.reporting.site: each report's header and contents, index.html;
`python -m helpers.reports --site` does only that, running nothing), and after a real-data run the
results table of docs/results.md is regenerated (`python -m helpers.reports --results-table` does only that).
"""

from __future__ import annotations

import argparse
import sys

from .core.cli import add_debug_argument, positive_int, run
from .data.source import project_root
from .reporting.results import RESULTS_PAGE
from .reporting.series import notebooks_in, report_dir, run_series, site, update_results_table


def main(argv: list[str] | None = None) -> int:
    """Command line: python -m helpers.reports [--preset P] [--only 01 02] [--timeout S] | --results-table | --site."""
    return run(_main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.reports", description=__doc__)
    parser.add_argument("--preset", choices=("auto", "smoke", "cpu", "gpu", "full"), help="override every notebook's preset")
    parser.add_argument("--only", nargs="*", help="run only notebooks whose name contains one of these")
    parser.add_argument("--timeout", type=positive_int, help="per-cell timeout in seconds")
    parser.add_argument("--check", action="store_true",
                        help="prove the preset's code path (models, input sizes, batch sizes, schedules, grid) on a few "
                             "dozen images, 2 epochs per training; output under reports/check/ only")
    parser.add_argument("--results-table", action="store_true",
                        help="only regenerate the results table of docs/results.md from reports/metrics/*.json "
                             "(runs no notebook)")
    parser.add_argument("--site", action="store_true",
                        help="only rebuild the reports' headers, contents and index.html from what reports/ holds "
                             "(runs no notebook; with --check: reports/check/)")
    add_debug_argument(parser)
    args = parser.parse_args(argv)
    if args.results_table:
        root = project_root()
        return 0 if update_results_table(root / RESULTS_PAGE, report_dir(False, root)) else 1
    if args.site:
        root = project_root()
        site(report_dir(False, root, args.check), [nb.stem for nb in notebooks_in(root / "notebooks")],
             None if args.check else root / "README.md")
        return 0
    failures = run_series(args.preset, args.only, timeout=args.timeout, check=args.check)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
