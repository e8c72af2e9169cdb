"""Train from the command line; also the torchrun entry point for DDP.

    python -m helpers.train --recipe 03_custom_cnn:improved [--preset cpu] [--data DIR] --checkpoint F
    python -m helpers.train --list-recipes [--preset cpu]
    python -m helpers.train --data DIR --model resnet18 --image-size 64 --epochs 5 [--checkpoint F]
    torchrun --nproc-per-node 2 -m helpers.train --recipe 04_resnet_transfer:finetune --checkpoint F

--recipe trains exactly the arm that notebook uses (helpers.course.recipes): model, pretrained weights, input size,
schedule, augmentation, imbalance handling; the checkpoint also holds the temperature and balanced decision fitted
on validation, which `python -m helpers.evaluate` applies. Without --recipe, the flags give one model and recipe.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from .core.cli import add_debug_argument, non_negative_int, positive_float, positive_int, run
from .course.config import PRESETS, resolve_preset
from .data.dataset import load_split_data
from .data.tensors import default_device
from .core.errors import DataError
from .training.inference import evaluate
from .models import build_classifier
from .course.train_recipe import recipe_names, train_recipe
from .training.loop import IMBALANCE, OPTIMIZERS, TrainConfig, distributed, fit


def parser() -> argparse.ArgumentParser:
    """The command line's arguments."""
    parser = argparse.ArgumentParser(prog="python -m helpers.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", help="NOTEBOOK:NAME of a notebook's arm (see --list-recipes)")
    parser.add_argument("--list-recipes", action="store_true", help="print every NOTEBOOK:NAME and exit")
    parser.add_argument("--preset", choices=("auto", *PRESETS), default="auto",
                        help="the preset whose recipe to train (auto: $SKIN_LESION_PRESET, else gpu with CUDA, else cpu)")
    parser.add_argument("--data", type=Path, help="data folder (default: $HAM10000_DIR / $MELANOMA10K_DIR, then data/)")
    parser.add_argument("--model", default="reference_cnn")
    parser.add_argument("--image-size", type=positive_int, default=64)
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=positive_float, default=1e-3)
    parser.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS)
    parser.add_argument("--imbalance", default="none", choices=IMBALANCE)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--max-images", type=positive_int)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--checkpoint", type=Path)
    add_debug_argument(parser)
    return parser


def _main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    preset = args.preset if args.preset != "auto" else resolve_preset("auto")  # an explicit --preset beats the variable
    if args.list_recipes:
        print("\n".join(recipe_names(preset)))
        return 0
    rank, world = distributed()
    try:
        summary = _train_recipe(args, preset, rank, world) if args.recipe else _train_flags(args, rank, world)
        if rank == 0:
            print(json.dumps({"world_size": world, **summary}))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def _train_recipe(args: argparse.Namespace, preset: str, rank: int, world: int) -> dict:
    if args.checkpoint is None:
        raise DataError("--recipe needs --checkpoint FILE: where the trained model goes")
    summary = train_recipe(args.recipe, preset, args.checkpoint, args.data, args.seed, args.max_images, rank, world)
    if rank == 0:
        print(f"{args.recipe} ({preset}): {summary['arm']}", file=sys.stderr)
        if summary["weights"]:
            print(summary["weights"], file=sys.stderr)
        print(f"checkpoint written to {args.checkpoint}", file=sys.stderr)
    return summary


def _train_flags(args: argparse.Namespace, rank: int, world: int) -> dict:
    if args.data is None:
        raise DataError("--data DIR is needed without --recipe (a HAM10000-layout folder)")
    if rank > 0:
        dist.barrier()  # rank 0 writes the split and the image cache first; the others then read them
    data = load_split_data(args.data, args.image_size, seed=args.seed, max_images=args.max_images,
                           device=default_device(), cache_dir=args.cache_dir, progress=rank == 0)
    if rank == 0 and world > 1:
        dist.barrier()
    torch.manual_seed(args.seed)
    model = build_classifier(args.model, data.classes, args.image_size).to(default_device())
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                         imbalance=args.imbalance, seed=args.seed, progress=rank == 0)
    result = fit(model, data.train, data.val, config, checkpoint_path=args.checkpoint)
    test = evaluate(model, data.test)
    return {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
            "val_balanced_accuracy": result.best_score, "test_accuracy": test["accuracy"],
            "test_balanced_accuracy": test["balanced_accuracy"], "test_probs_shape": list(test["probs"].shape)}


def main(argv: list[str] | None = None) -> int:
    """Train a notebook's arm (--recipe) or one model from flags; one `error:` line on failure."""
    return run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
