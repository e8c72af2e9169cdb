"""How far a headline moves with the training seed: notebooks' headline arms trained over several seeds.

Each arm (`NOTEBOOK:NAME`, as `python -m helpers.train --recipe` takes it) is trained on the `cpu` preset with
training seeds 0, 1, 2 (the initial weights, batch order and augmentation draws) on one split: the default
lesion-disjoint split of seed 0 (the split every notebook uses), or for the DermaMNIST arms the official split.
Each model is scored on the test split as its notebook scores it (TTA where the notebook uses it). Every finished
run is added to the JSON at once (atomically), so an interrupted benchmark resumes where it stopped: a run already
in the file for the same arm, seed, preset and data is not trained again.

    HAM10000_DIR=/path/to/ham10000 python benchmarks/seed_spread.py --out benchmarks/results/seed-spread.json
    python benchmarks/seed_spread.py --smoke    # the synthetic set, two seeds, in seconds: checks the script works
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core import cli
from helpers.core.io import write_json
from helpers.course.config import hardware_description
from helpers.course.recipes import find_arm
from helpers.course.train_recipe import BINARY_NOTEBOOKS
from helpers.data.dataset import SplitData, load_split_data
from helpers.data.source import find_dermamnist_csv, models_home, resolve_data_source
from helpers.data.synthetic import make_synthetic
from helpers.data.tensors import default_device
from helpers.evaluation.splits import evaluate_split
from helpers.training.loop import fit


@dataclass(frozen=True)
class Headline:
    """An arm whose test result a notebook reports as a headline, and how the notebook scores it."""

    reference: str  # NOTEBOOK:NAME
    tta: bool
    split: str = "lesion_disjoint"


HEADLINES = (
    Headline("03_custom_cnn:improved", tta=True),
    Headline("05_efficientnet_binary:ham", tta=True),
    Headline("04_resnet_transfer:finetune", tta=True),
    Headline("04_resnet_transfer:dermamnist_finetune", tta=False, split="dermamnist_official"),
    Headline("04_resnet_transfer:dermamnist_scratch", tta=False, split="dermamnist_official"),
)
DERMAMNIST_PX = 64  # the size of the DermaMNIST goal (MedMNIST v2's 0.754 at 64 px)
METRICS = ("accuracy", "balanced_accuracy", "macro_auc", "auc")


def scores(summary: dict[str, Any]) -> dict[str, float]:
    """The headline metrics of an evaluation summary (those the task has), with the balanced decision's."""
    found = {f"test_{key}": summary[key] for key in METRICS if summary.get(key) is not None}
    decided = summary.get("balanced_decision", {}).get("balanced_accuracy")
    return {**found, **({"test_balanced_accuracy_balanced_decision": decided} if decided is not None else {})}


def train_one(headline: Headline, seed: int, preset: str, data: SplitData, progress: bool = True) -> dict[str, Any]:
    """Train the headline's arm with this training seed on data; its test scores and wall time."""
    arm = find_arm(headline.reference, preset, seed=seed)
    if arm.pretrained:
        arm, _ = arm.with_weights()
    if headline.split == "dermamnist_official":
        arm = arm.using(image_size=data.image_size)
    started = time.time()
    model = arm.build(data.classes).to(default_device())
    result = fit(model, data.train, data.val, dataclasses.replace(arm.train, progress=progress))
    summary = evaluate_split(model, data, "test", tta=headline.tta, n_boot=200, seed=0).summary
    return {"arm": headline.reference, "seed": seed, "model": arm.model, "image_size": data.image_size,
            "split": headline.split, "tta": headline.tta, "epochs": len(result.history),
            "best_epoch": result.best_epoch, **scores(summary), "total_s": round(time.time() - started, 1)}


def load_data(root: Path, kind: str, headline: Headline, preset: str, args: argparse.Namespace) -> SplitData:
    """The headline's split at its arm's input size (seed 0: the split is the same for every training seed)."""
    notebook = headline.reference.split(":")[0]
    task = "binary" if notebook in BINARY_NOTEBOOKS else "dx"
    size = DERMAMNIST_PX if headline.split == "dermamnist_official" else find_arm(headline.reference, preset).image_size
    split_csv = find_dermamnist_csv(None) if headline.split == "dermamnist_official" else None
    return load_split_data(root, size, split=headline.split, task=task, seed=0, max_images=args.max_images,
                           device=default_device(), split_csv=split_csv, name=kind, progress=not args.quiet)


def done_runs(out: Path, preset: str, kind: str) -> list[dict[str, Any]]:
    """The runs already in out for this preset and data (none when out is missing)."""
    if not out.exists():
        return []
    record = json.loads(out.read_text(encoding="utf-8"))
    return [run for run in record.get("runs", []) if run.get("preset") == preset and run.get("data") == kind]


def run_all(args: argparse.Namespace, root: Path, kind: str, out: Path) -> dict[str, Any]:
    """Every headline × seed not yet in out, each written to out as soon as it is done."""
    runs = done_runs(out, args.preset, kind)
    record = {"preset": args.preset, "data": kind, "split_seed": 0, "runs": runs}
    for headline in [h for h in HEADLINES if not args.arm or h.reference in args.arm]:
        todo = [s for s in args.seeds if not any(r["arm"] == headline.reference and r["seed"] == s for r in runs)]
        if not todo:
            continue
        if headline.split == "dermamnist_official" and (kind == "synthetic" or find_dermamnist_csv(None) is None):
            print(f"{headline.reference}: skipped (needs real HAM10000 and $DERMAMNIST_SPLIT_CSV)")
            continue
        data = load_data(root, kind, headline, args.preset, args)
        for seed in todo:
            run = {**train_one(headline, seed, args.preset, data, progress=not args.quiet), "preset": args.preset,
                   "data": kind, "hardware": hardware_description(), "date": datetime.date.today().isoformat()}
            runs.append(run)
            write_json(record, out)
            print(f"{headline.reference} seed {seed}: " + ", ".join(
                f"{k.removeprefix('test_')} {v:.3f}" for k, v in run.items() if k.startswith("test_")) +
                  f" ({run['total_s']:.0f} s)", flush=True)
    return record


def spread(record: dict[str, Any]) -> pd.DataFrame:
    """Per arm and metric: the mean, min and max over seeds, and how many seeds."""
    frame = pd.DataFrame(record["runs"])
    metrics = [c for c in frame.columns if c.startswith("test_")]
    long = frame.melt(id_vars=["arm", "seed"], value_vars=metrics, var_name="metric").dropna()
    table = long.groupby(["arm", "metric"])["value"].agg(["mean", "min", "max", "count"])
    return table.rename(columns={"count": "seeds"})


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arm", action="append", choices=[h.reference for h in HEADLINES],
                   help="only this headline arm (repeatable; default: all)")
    p.add_argument("--seeds", type=cli.non_negative_int, nargs="+", default=[0, 1, 2])
    p.add_argument("--preset", default=None, help="the recipes' preset (default: cpu; smoke with --smoke)")
    p.add_argument("--data", type=Path, help="HAM10000-layout folder (default: $HAM10000_DIR)")
    p.add_argument("--max-images", type=cli.positive_int, help="use a lesion-grouped subset of this many images")
    p.add_argument("--smoke", action="store_true", help="two seeds of 03's and 05's arms on a small synthetic set")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", type=Path, help="JSON file (default: models/seed-spread-<preset>.json)")
    cli.add_debug_argument(p)
    return p


def main(argv: list[str]) -> int:
    """Parse, run what is not yet in the JSON, print the spread."""
    args = parser().parse_args(argv)
    args.preset = args.preset or ("smoke" if args.smoke else "cpu")
    out = args.out or models_home() / f"seed-spread-{args.preset}.json"
    if args.smoke:
        args.seeds, args.arm, args.quiet = args.seeds[:2], args.arm or [HEADLINES[0].reference, HEADLINES[1].reference], True
        with tempfile.TemporaryDirectory(prefix="seed-spread-") as folder:
            root = make_synthetic(Path(folder) / "ham", n_images=args.max_images or 280, image_size=(48, 36),
                                  progress=False)
            record = run_all(args, root, "synthetic", Path(folder) / "seed-spread.json")
    else:
        source = resolve_data_source(args.data)
        if source.kind == "synthetic":
            raise ValueError("no HAM10000 data: set $HAM10000_DIR or --data (or run --smoke for the synthetic check)")
        record = run_all(args, source.root, source.kind, out)
        print(f"written {out}")
    print(spread(record).to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
