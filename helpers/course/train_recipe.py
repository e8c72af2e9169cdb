"""Train exactly the recipe a notebook uses for one arm, from the command line (`python -m helpers.train --recipe`).

The arm (helpers.course.recipes) fixes the model, ImageNet weights (its offline stand-in where they cannot be had),
input size, schedule, augmentation and imbalance handling. The data is a HAM10000-layout folder (the task of the
notebook: seven diagnoses, or benign/malignant for notebook 05), or for notebook 05's melanoma10k arms a
{train,test}/{benign,malignant} folder. The checkpoint holds the trained model, the resolved arm and run, and the
rules fitted on the validation split that `python -m helpers.evaluate` applies: the temperature, and for seven
classes the balanced decision (logit adjustment's tau and the training priors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..data.dataset import SplitData, load_folder_split_data, load_split_data
from ..data.melanoma import resolve_melanoma_source
from ..data.source import resolve_data_source
from ..data.splits import SPLIT_VERSION
from ..data.tensors import default_device
from ..evaluation.decision import class_priors, fit_tau
from ..evaluation.splits import evaluate_split
from ..training.inference import predict, predict_logits
from ..evaluation.metrics import fit_temperature
from ..models import save_checkpoint
from ..core.precision import resolve_amp
from .recipes import find_arm, list_arms
from .recipes.arms import Arm
from ..training.loop import fit

BINARY_NOTEBOOKS = ("05_efficientnet_binary",)
FOLDER_ARMS = ("05_efficientnet_binary:reference", "05_efficientnet_binary:ours")  # trained on melanoma10k


def recipe_names(preset: str = "cpu") -> list[str]:
    """Every NOTEBOOK:NAME that --recipe accepts, with its one-line description under preset."""
    return [f"{name}  ({find_arm(name, preset).describe()})" for name in list_arms(preset)]


def recipe_data(reference: str, arm: Arm, data_dir: str | Path | None, seed: int, max_images: int | None,
                progress: bool) -> SplitData:
    """The split data the arm trains on: a HAM10000 folder (dx or binary) or, for melanoma10k arms, a class folder."""
    if reference in FOLDER_ARMS:
        source = resolve_melanoma_source(data_dir)
        return load_folder_split_data(source.root, arm.image_size, seed=seed, max_images=max_images,
                                      device=default_device(), name=source.kind, progress=progress)
    source = resolve_data_source(data_dir)
    task = "binary" if reference.split(":")[0] in BINARY_NOTEBOOKS else "dx"
    return load_split_data(source.root, arm.image_size, task=task, seed=seed, max_images=max_images,
                           device=default_device(), name=source.kind, progress=progress)


def validation_rules(model: torch.nn.Module, data: SplitData) -> dict[str, Any]:
    """The temperature and (for more than two classes) the balanced decision, fitted on the validation split."""
    rules: dict[str, Any] = {"temperature": fit_temperature(predict_logits(model, data.val.images), data.val.labels)}
    if len(data.classes) > 2:
        priors = class_priors(data.train.labels.cpu().numpy(), len(data.classes))
        tau = fit_tau(predict(model, data.val.images), data.val.labels.cpu().numpy(), priors)
        rules["decision"] = {"rule": "logit adjustment", "tau": tau, "priors": priors.tolist()}
    return rules


def train_recipe(reference: str, preset: str, checkpoint: str | Path, data_dir: str | Path | None = None,
                 seed: int = 0, max_images: int | None = None, rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Train the arm 'NOTEBOOK:NAME' under preset, save its checkpoint (rank 0), and return a summary of the run."""
    arm = find_arm(reference, preset, seed=seed)
    weights_note = ""
    if arm.pretrained:
        arm, weights_note = arm.with_weights()
    if rank > 0:
        dist.barrier()  # rank 0 writes the split and the image cache first; the others then read them
    data = recipe_data(reference, arm, data_dir, seed, max_images, progress=rank == 0)
    if rank == 0 and world > 1:
        dist.barrier()
    if arm.frozen_backbone:  # (Arm.build seeds the initial weights with the arm's seed)  # a linear probe: the head fitted on cached frozen features, no epochs
        model = arm.fit_linear_probe(data).model
        epochs_run, best_epoch, amp = 0, 0, resolve_amp(arm.train.amp, default_device())
    else:
        model = arm.build(data.classes).to(default_device())
        result = fit(model, data.train, data.val, arm.train)
        epochs_run, best_epoch, amp = len(result.history), result.best_epoch, result.amp
    test = evaluate_split(model, data, "test", n_boot=200, seed=seed)
    kind = (resolve_melanoma_source if reference in FOLDER_ARMS else resolve_data_source)(data_dir).kind
    run = {"recipe": reference, "preset": preset, "seed": seed, "max_images": max_images, "data_source": kind,
           "split_version": SPLIT_VERSION, "arm": arm.to_dict()}
    if rank == 0:
        save_checkpoint(model, checkpoint, {"train": arm.train.to_dict(), "run": run, "amp_resolved": amp},
                        {**validation_rules(model, data), "tta": False, "best_epoch": best_epoch})
    summary = test.summary
    return {"recipe": reference, "arm": arm.describe(), "weights": weights_note.splitlines()[-1] if weights_note else "",
            "checkpoint": str(checkpoint), "epochs_run": epochs_run, "best_epoch": best_epoch,
            "test_accuracy": summary["accuracy"], "test_balanced_accuracy": summary["balanced_accuracy"],
            "test_macro_auc": summary.get("macro_auc"), "n_test": summary["n_test"]}
