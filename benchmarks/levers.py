"""One recipe arm as it is and as a linear probe: validation and test balanced accuracy, macro AUC and wall time.

The arm is a notebook's recipe (`NOTEBOOK:NAME`, as `python -m helpers.train --recipe` takes it) under a preset,
trained once as the baseline (`--image-size`, `--epochs` and `--model` change its input size, epochs and
architecture: one lever per run of this script); each `--lever probe[=SIZE]` adds a run with no training loop: a
logistic-regression head on cached frozen features of the arm's pretrained backbone, the images cached at SIZE
px (default: the arm's size). Every row is scored on validation (where a lever is chosen) and on test (reported,
never chosen on).

The training levers this script once compared (EMA of the weights, progressive resizing, warm-up, per-layer
learning-rate decay, Mixup and CutMix) were removed from `TrainConfig` after the measurement recorded in
benchmarks/README.md, "Training levers", which names the commit to check out to rerun them.

Real data comes from `--data` or `$HAM10000_DIR`; `--smoke` runs on a small synthetic set in seconds, to check
the script. The table is printed and written as JSON (`--out`).

    HAM10000_DIR=/path/to/ham10000 python benchmarks/levers.py --arm 04_resnet_transfer:finetune --lever probe=128
    python benchmarks/levers.py --smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from helpers.core import cli
from helpers.course.config import hardware_description
from helpers.data.dataset import SplitData, load_split_data
from helpers.data.source import data_home, models_home, resolve_data_source
from helpers.data.synthetic import make_synthetic
from helpers.data.tensors import default_device
from helpers.evaluation.splits import evaluate_split
from helpers.core.io import write_json
from helpers.training.probe import linear_probe
from helpers.course.recipes import find_arm
from helpers.course.recipes.arms import Arm
from helpers.course.train_recipe import BINARY_NOTEBOOKS, FOLDER_ARMS
from helpers.models import model_names
from helpers.training.loop import TrainConfig, fit

LEVERS = ("probe",)
DEFAULTS = {"probe": "arm"}


def parse_lever(text: str) -> tuple[str, str]:
    """'NAME' or 'NAME=VALUE' as (name, value); the lever's default value when none is given."""
    name, _, value = text.partition("=")
    if name not in LEVERS:
        raise argparse.ArgumentTypeError(f"unknown lever {name!r}; one of {', '.join(LEVERS)}")
    return name, value or DEFAULTS[name]


def load_data(root: Path, kind: str, arm: Arm, reference: str, size: int, args: argparse.Namespace,
              cache_dir: Path | None) -> SplitData:
    """The arm's split (its task: seven diagnoses, or benign/malignant for notebook 05) at size px."""
    task = "binary" if reference.split(":")[0] in BINARY_NOTEBOOKS else "dx"
    return load_split_data(root, size, task=task, seed=args.seed, max_images=args.max_images, device=default_device(),
                           cache_dir=cache_dir, name=kind, progress=not args.quiet)


def scored(model: torch.nn.Module, data: SplitData, args: argparse.Namespace) -> dict[str, Any]:
    """Validation balanced accuracy and macro AUC (to choose on); test balanced accuracy (arg-max and balanced
    decision) and macro AUC (to report)."""
    val = evaluate_split(model, data, "val", n_boot=args.n_boot, seed=args.seed).summary
    summary = evaluate_split(model, data, "test", n_boot=args.n_boot, seed=args.seed).summary
    decided = summary.get("balanced_decision", {}).get("balanced_accuracy")
    return {"val_balanced_accuracy": val["balanced_accuracy"], "val_macro_auc": val.get("macro_auc"),
            "test_balanced_accuracy": summary["balanced_accuracy"], "test_macro_auc": summary.get("macro_auc"),
            "test_balanced_accuracy_balanced_decision": decided}


def train_run(name: str, setting: str, arm: Arm, config: TrainConfig, data: SplitData,
              args: argparse.Namespace) -> dict[str, Any]:
    """Train the arm with config on data and score it on the test split."""
    started = time.time()
    torch.manual_seed(args.seed)
    model = arm.build(data.classes).to(default_device())
    result = fit(model, data.train, data.val, dataclasses.replace(config, progress=not args.quiet))
    train_s = time.time() - started
    return {"run": name, "setting": setting, "model": arm.model, "image_size": data.image_size,
            "epochs": len(result.history), "best_epoch": result.best_epoch, **scored(model, data, args),
            "train_s": round(train_s, 1), "total_s": round(time.time() - started, 1)}


def probe_run(setting: str, arm: Arm, data: SplitData, args: argparse.Namespace,
              cache_dir: Path | None) -> dict[str, Any]:
    """The arm's pretrained backbone as a logistic-regression probe on cached features of data."""
    started = time.time()
    torch.manual_seed(args.seed)
    model = arm.build(data.classes).to(default_device())
    result = linear_probe(model, data.train, data.val, arm.train, input_size=data.image_size,
                          cache_dir=cache_dir / "features" if cache_dir else data_home() / "cache" / "features")
    train_s = time.time() - started
    return {"run": "probe", "setting": f"{setting}, weight decay {result.weight_decay:g} "
                                       f"(features {result.extract_time_s:.1f} s, fit {result.fit_time_s:.1f} s)",
            "model": arm.model, "image_size": data.image_size, "epochs": 0, "best_epoch": 0,
            **scored(result.model, data, args), "train_s": round(train_s, 1), "total_s": round(time.time() - started, 1)}


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run the baseline and each probe; the JSON record of every row (--smoke: in a temporary folder, then removed)."""
    if not args.smoke:
        return run_levers(args, None)
    with tempfile.TemporaryDirectory(prefix="levers-") as folder:
        return run_levers(args, Path(folder))


def run_levers(args: argparse.Namespace, tmp: Path | None) -> dict[str, Any]:
    """The baseline and each probe on the arm's data (the synthetic set made in tmp when given)."""
    if tmp is not None:
        root, kind, cache_dir = make_synthetic(tmp / "ham", n_images=args.max_images or 280, image_size=(48, 36),
                                               progress=False), "synthetic", tmp / "cache"
    else:
        source = resolve_data_source(args.data)
        if source.kind == "synthetic":
            raise ValueError("no HAM10000 data: set $HAM10000_DIR or --data (or run --smoke for the synthetic check)")
        root, kind, cache_dir = source.root, source.kind, None
    if args.arm in FOLDER_ARMS:
        raise ValueError(f"{args.arm} trains on melanoma10k folders; choose an arm trained on HAM10000")
    arm, weights = find_arm(args.arm, args.preset, seed=args.seed), ""
    if not arm.pretrained and args.lever:
        raise ValueError(f"the probe lever needs a pretrained arm; {args.arm} trains {arm.model} from scratch")
    arm = arm.using(model=args.model)
    if arm.pretrained:
        arm, weights = arm.with_weights()
    arm = dataclasses.replace(arm.using(image_size=args.image_size),
                              train=dataclasses.replace(arm.train, epochs=args.epochs or arm.train.epochs))
    data = load_data(root, kind, arm, args.arm, arm.image_size, args, cache_dir)
    changed = [f"--{flag} {value}" for flag, value in (("model", args.model), ("epochs", args.epochs),
                                                        ("image-size", args.image_size)) if value]
    setting = f"the recipe with {' '.join(changed)}" if changed else "the recipe as it is"
    rows = [] if args.no_baseline else [train_run("baseline", setting, arm, arm.train, data, args)]
    for _, value in args.lever or []:
        size = arm.image_size if value == "arm" else int(value)
        probe_data = data if size == arm.image_size else load_data(root, kind, arm, args.arm, size, args, cache_dir)
        rows.append(probe_run(f"input {size} px", arm, probe_data, args, cache_dir))
    weights = re.sub(r"/\S*/", "", weights.splitlines()[-1]) if weights else ""  # file names, not this machine's paths
    return {"arm": args.arm, "preset": args.preset, "model": arm.model, "weights": weights,
            "data": kind, "n_images": int(len(data.index)), "n_train": len(data.train), "n_test": len(data.test),
            "seed": args.seed, "hardware": hardware_description(), "device": str(default_device()),
            "threads": torch.get_num_threads(), "date": datetime.date.today().isoformat(), "rows": rows}


def table(record: dict[str, Any]) -> str:
    """The rows as a small text table."""
    frame = pd.DataFrame(record["rows"]).reindex(columns=[
        "run", "setting", "epochs", "val_balanced_accuracy", "val_macro_auc", "test_balanced_accuracy",
        "test_balanced_accuracy_balanced_decision", "test_macro_auc", "train_s"])
    frame.columns = ["run", "setting", "epochs", "val_bal_acc", "val_macro_auc", "test_bal_acc",
                     "test_bal_acc_balanced_decision", "test_macro_auc", "train_s"]
    return frame.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arm", default="04_resnet_transfer:finetune", help="NOTEBOOK:NAME (default: %(default)s)")
    p.add_argument("--preset", default=None, help="the recipe's preset (default: cpu; smoke with --smoke)")
    p.add_argument("--lever", action="append", type=parse_lever, metavar="probe[=SIZE]",
                   help="probe[=SIZE]: a linear probe on cached features to compare with the baseline, repeatable")
    p.add_argument("--data", type=Path, help="HAM10000-layout folder (default: $HAM10000_DIR)")
    p.add_argument("--epochs", type=cli.positive_int, help="override the arm's epochs")
    p.add_argument("--image-size", type=cli.positive_int, help="override the arm's input size")
    p.add_argument("--model", choices=model_names(), help="override the arm's architecture (e.g. efficientnet_lite1)")
    p.add_argument("--max-images", type=cli.positive_int, help="use a lesion-grouped subset of this many images")
    p.add_argument("--seed", type=cli.non_negative_int, default=0)
    p.add_argument("--n-boot", type=cli.positive_int, default=200, help="bootstrap resamples for the intervals")
    p.add_argument("--no-baseline", action="store_true", help="run only the probes")
    p.add_argument("--smoke", action="store_true", help="the baseline and a probe on a small synthetic set, in seconds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", type=Path, help="JSON file (default: models/levers/<arm>-<levers>.json)")
    cli.add_debug_argument(p)
    return p


def main(argv: list[str]) -> int:
    """Parse, run, print the table and write the JSON."""
    args = parser().parse_args(argv)
    if args.smoke:
        args.preset = args.preset or "smoke"
        args.lever = args.lever or [(name, DEFAULTS[name]) for name in LEVERS]
        args.n_boot = min(args.n_boot, 20)
        args.quiet = True
    args.preset = args.preset or "cpu"
    if not args.lever and args.no_baseline:
        raise ValueError("nothing to run: --no-baseline without --lever")
    record = benchmark(args)
    levers = "-".join(name for name, _ in args.lever or []) or "baseline"
    out = args.out or models_home() / "levers" / f"{args.arm.replace(':', '_')}-{levers}{'-smoke' if args.smoke else ''}.json"
    print(f"{record['arm']} ({record['model']}, {record['preset']} preset) on {record['data']}: {record['n_train']} "
          f"train / {record['n_test']} test images; {record['hardware']}, {record['threads']} threads")
    if record["weights"]:
        print(record["weights"])
    print(table(record))
    print(f"written {write_json(record, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
