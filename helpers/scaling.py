"""The scaling study's jobs: nested training subsets, a grid of runs, one result file per run, resume and merge.

A grid is a list of `ScalingRow`s (model, pretrained, fraction, seed, image size, training budget). Each
row has a stable id (a hash of its settings, the fixed training recipe and a fingerprint of the data and
split), and running it writes one JSON file, atomically, into a results folder (default
`models/scaling/<preset>/`, git-ignored). Finished rows are skipped on resume, so an interrupted grid
picks up where it stopped, and shares of the grid can run in separate processes or on separate GPUs:

    python -m helpers.scaling --preset cpu --shard 1/2      # in one shell (or CUDA_VISIBLE_DEVICES=0 ...)
    python -m helpers.scaling --preset cpu --shard 2/2      # in another
    python -m helpers.scaling merge --preset cpu --out rows.csv

Copy the JSON files of several machines into one folder to merge them. Validation and test sets are
the same for every row; only the training subset, the initialisation and the batch order change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .core.cli import add_debug_argument, non_negative_int, run
from .core.errors import DataError
from .core.io import atomic_open
from .course.config import resolve_config
from .course.recipes import recipe
from .course.scaling import (NOTEBOOK, GridData, ScalingRow, build_grid, data_fingerprint, load_records, parse_record,
                             parse_shard, results_folder, results_table, row_id, run_grid)


def main(argv: list[str] | None = None) -> int:
    """Run a share of a preset's grid (one result file per row), or merge result files into a CSV."""
    return run(_main, argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers.scaling", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="run", choices=("run", "merge"))
    parser.add_argument("--preset", default="auto", choices=("auto", "smoke", "cpu", "gpu", "full"),
                        help="the notebook's presets (default auto)")
    parser.add_argument("--data-dir", help="HAM10000 folder (default: $HAM10000_DIR, data/ham10000, synthetic)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="split and subset seed (the notebook's seed)")
    parser.add_argument("--results", type=Path, help="results folder (default models/scaling/<preset>/)")
    parser.add_argument("--shard", type=parse_shard, default=(1, 1), help="run the K-th of N shares of the rows")
    parser.add_argument("--rows", nargs="*", help="run only the rows with these ids")
    parser.add_argument("--dry-run", action="store_true", help="list this share's rows and whether they are done")
    parser.add_argument("--out", type=Path, help="merge: write the table to this CSV")
    parser.add_argument("--strict", action="store_true",
                        help="merge: fail on a result file that cannot be used (default: skip it with a warning)")
    add_debug_argument(parser)
    return parser


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    config = resolve_config(args.preset, data_dir=args.data_dir, seed=args.seed)
    results_dir = args.results or results_folder(config.preset)
    if args.command == "merge":
        return _merge(results_dir, args.out, args.strict)
    return _run(args, config, results_dir)


def _merge(results_dir: Path, out: Path | None, strict: bool) -> int:
    records = load_records(results_dir, strict=strict)
    if not records:
        raise DataError(f"no usable result files (*.json) in {results_dir}"
                        + (f"; {out} {'kept as it was' if out.exists() else 'not written'}" if out else ""))
    table = results_table(records)
    print(f"{len(table)} result file(s) in {results_dir}")
    if out:
        with atomic_open(out, "w", newline="") as handle:
            table.to_csv(handle, index=False)
    else:
        print(table.to_string(max_colwidth=40))
    return 0


def _run(args: argparse.Namespace, config: Any, results_dir: Path) -> int:
    settings = recipe(NOTEBOOK, config.preset)
    grid = build_grid(settings, subset_seed=args.seed)
    data = GridData(config.data_root, config.data_source, args.seed, config.max_images)

    def identify(row: ScalingRow) -> str:
        return row_id(row, data_fingerprint(data(row.image_size), data.name))

    k, n = args.shard
    rows = grid[k - 1::n]
    if args.rows is not None:
        unknown = sorted(set(args.rows) - {identify(r) for r in grid})
        if unknown:
            raise DataError(f"--rows: no row of the {config.preset} grid has the id(s) {', '.join(unknown)}; "
                            "list them with --dry-run")
        rows = [r for r in rows if identify(r) in set(args.rows)]
    if args.dry_run:
        for row in rows:
            identifier = identify(row)
            path = results_dir / f"{identifier}.json"
            record, problem = parse_record(path, identifier) if path.is_file() else (None, None)
            print(f"{'done   ' if record else 'corrupt' if problem else 'pending'} {identifier}"
                  + (f" ({path.name} {problem}; `run` moves it aside and redoes the row)" if problem else ""))
        return 0
    run_grid(rows, data, results_dir, resume=settings["resume"], n_boot=settings["n_boot"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
