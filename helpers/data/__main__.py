"""Command line for the data layer: check, split, synth, download, links.

A command module: `links` embeds images with an ImageNet model (helpers.evaluation.leakage), which the data layer's
library modules may not import (tests/test_architecture.py counts this module among the commands)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .ham10000 import check_ham10000, index_counts, load_ham10000
from .splits import SPLIT_FRACTIONS, lesion_split, save_split, split_table


def check(args: argparse.Namespace) -> int:
    """Print a summary of the folder and its problems; 1 when the data is invalid."""
    index, problems, notes = check_ham10000(args.dir, progress=not args.quiet)
    if index is not None:
        counts = index_counts(index)
        print(f"{args.dir}: {counts['images']:,} images, {counts['lesions']:,} lesions")
        for dx, count in counts["per_class"].items():
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


DOWNLOAD_DATASETS: tuple[str, ...] = ("ham10000", "melanoma10k", "dermamnist-split", "isic2018-test")


def download(args: argparse.Namespace) -> int:
    """Fetch HAM10000, melanoma10k, the DermaMNIST split CSV or the ISIC 2018 test set (network access needed)."""
    from .catalog import download_dataset

    where = download_dataset(args.dataset, args.target, source=args.source, ham10000_dir=args.ham10000_dir,
                             split_info_url=args.split_info_url)
    print(f"{args.dataset} is in {where}")
    return 0


def links(args: argparse.Namespace) -> int:
    """Find lesions filed under two lesion_ids by image embeddings (the format of helpers/data/linked_lesions.csv)."""
    from ..core.io import atomic_open
    from ..evaluation.leakage import LINK_SIMILARITY, image_embeddings, linked_pairs

    index = load_ham10000(args.dir)
    embeddings = image_embeddings(index["path"].tolist(), progress=not args.quiet)
    pairs = linked_pairs(index, embeddings, LINK_SIMILARITY if args.threshold is None else args.threshold)
    with atomic_open(args.out, "w", newline="") as handle:
        pairs.to_csv(handle, index=False)
    print(f"{len(pairs)} linked pair(s) of {pairs[['lesion_id_a', 'lesion_id_b']].stack().nunique()} lesions "
          f"written to {args.out}")
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
    p.add_argument("--fractions", type=float, nargs=3, default=SPLIT_FRACTIONS, metavar=("TRAIN", "VAL", "TEST"))
    p.set_defaults(run=split)
    p = commands.add_parser("synth", help="write the synthetic demo data set")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--n-images", type=int, default=700)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=synth)
    p = commands.add_parser("download", help="download HAM10000, melanoma10k, the DermaMNIST split or the ISIC 2018 "
                                             "Task 3 test set (needs network)")
    p.add_argument("--dataset", choices=DOWNLOAD_DATASETS, default="ham10000")
    p.add_argument("--source", choices=("dataverse", "kaggle"), default=None,
                   help="ham10000: dataverse (default, no account) or kaggle; melanoma10k: kaggle only")
    p.add_argument("--target", type=Path, default=None,
                   help="default data/ham10000, data/melanoma10k, data/dermamnist_split.csv or data/isic2018_test "
                        "in the project")
    p.add_argument("--ham10000-dir", type=Path, default=None,
                   help="dermamnist-split: the HAM10000 folder giving lesion_id and dx "
                        "(default $HAM10000_DIR, then data/ham10000)")
    p.add_argument("--split-info-url", default=None,
                   help="dermamnist-split: URL of dermamnist_split_info.csv (default $DERMAMNIST_SPLIT_INFO_URL, "
                        "then Abhishek et al.'s file on GitHub)")
    p.set_defaults(run=download)
    p = commands.add_parser("links", help="find lesions filed under two lesion_ids (image embeddings; needs "
                                          "EfficientNet-Lite0's ImageNet weights)")
    p.add_argument("dir", type=Path)
    p.add_argument("--out", type=Path, required=True, help="CSV of linked pairs to write")
    p.add_argument("--threshold", type=float, default=None, help="cosine similarity (default: LINK_SIMILARITY, 0.93)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=links)
    return main


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a failure prints one `error:` line and exits non-zero (--debug: the traceback)."""
    from ..core.cli import run

    def body(args: list[str]) -> int:
        namespace = parser().parse_args(args)
        return namespace.run(namespace)

    return run(body, argv)


if __name__ == "__main__":
    sys.exit(main())
