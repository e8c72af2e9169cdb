"""Command line for the data layer: check, split, synth, download."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DataError
from .ham10000 import check_ham10000, load_ham10000, summarize
from .source import data_home
from .splits import lesion_split, save_split, split_table


def check(args: argparse.Namespace) -> int:
    """Print a summary of the folder and its problems; 1 when the data is invalid."""
    index, problems, notes = check_ham10000(args.dir, progress=not args.quiet)
    if index is not None:
        summary = summarize(index)
        print(f"{args.dir}: {summary['images']:,} images, {summary['lesions']:,} lesions")
        for dx, count in summary["per_class"].items():
            print(f"  {dx:6s} {count:6,d}")
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    print("OK" if not problems else f"INVALID: {len(problems)} problem(s)")
    return 1 if problems else 0


def split(args: argparse.Namespace) -> int:
    """Write the lesion-disjoint split of the folder to a CSV and print its per-class counts."""
    index = load_ham10000(args.dir)
    assignment = lesion_split(index, seed=args.seed, fractions=tuple(args.fractions))
    save_split(index, assignment, args.out)
    print(split_table(index, assignment).to_string())
    print(f"wrote {args.out}")
    return 0


def synth(args: argparse.Namespace) -> int:
    """Write the synthetic demo set."""
    from .synthetic import make_synthetic

    print(f"wrote {make_synthetic(args.out_dir, n_images=args.n_images, seed=args.seed)}")
    return 0


def download(args: argparse.Namespace) -> int:
    """Fetch the real HAM10000 data (network access needed)."""
    from .download import download_ham10000

    print(f"HAM10000 is in {download_ham10000(Path(args.target), source=args.source)}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m helpers.data`."""
    main = argparse.ArgumentParser(prog="python -m helpers.data", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)
    p = commands.add_parser("check", help="validate a HAM10000 folder and print a summary")
    p.add_argument("dir", type=Path)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=check)
    p = commands.add_parser("split", help="write the lesion-disjoint train/val/test split as CSV")
    p.add_argument("dir", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fractions", type=float, nargs=3, default=(0.70, 0.15, 0.15), metavar=("TRAIN", "VAL", "TEST"))
    p.set_defaults(run=split)
    p = commands.add_parser("synth", help="write the synthetic demo data set")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--n-images", type=int, default=700)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=synth)
    p = commands.add_parser("download", help="download HAM10000 (needs network access)")
    p.add_argument("--source", choices=("dataverse", "kaggle"), default="dataverse")
    p.add_argument("--target", type=Path, default=data_home() / "ham10000")
    p.set_defaults(run=download)
    return main


def main(argv: list[str] | None = None) -> int:
    """Run the command line; errors in the data print one clear line and exit 1."""
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except (DataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
