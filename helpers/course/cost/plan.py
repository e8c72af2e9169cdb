"""What a notebook computes under a resolved recipe, counted before it runs: every training and every pass of images.

A notebook's `NotebookPlan` is a list of `Run`s (one per training, or per model evaluated without training) and the
image caches it builds. A run counts the images it trains on (epochs x training images), the images it only passes
forward (validation every epoch, test, TTA views, a probe's features, the balanced decision's validation pass), the
images it passes forward and backward without a step (Grad-CAM) and its bootstrap summaries. The counts follow the
notebooks' code (notebooks/NN_*.ipynb) and the helpers they call; `helpers.course.cost.estimate` turns them into time and
memory on a device. Early stopping is not foreseen: a run is counted with all its epochs (an upper bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...data.splits import SPLIT_FRACTIONS
from ..recipes import Arm, Recipe

TTA_VIEWS = 4  # helpers.training.inference: the image and its three flips
FOLDER_FRACTIONS = (0.90, 0.05, 0.05)  # melanoma10k's train folder, split by image as the reference notebook did


@dataclass(frozen=True)
class Run:
    """One training (or one model evaluated without training) and every pass of images it makes."""

    label: str
    model: str
    image_size: int
    batch_size: int
    train_images: int = 0  # images trained on: epochs x training images
    eval_images: int = 0  # images passed forward only
    backward_images: int = 0  # images passed forward and backward without an optimiser step (Grad-CAM)
    bootstraps: int = 0  # metric summaries with bootstrap intervals
    optimizer: str = "adamw"
    eval_batch_size: int = 256

    @property
    def steps(self) -> int:
        """Optimiser steps: whole training batches."""
        return math.ceil(self.train_images / self.batch_size) if self.train_images else 0


@dataclass(frozen=True)
class NotebookPlan:
    """A notebook's runs and image caches under one preset and data size."""

    notebook: str
    preset: str
    runs: tuple[Run, ...]
    loads: tuple[tuple[str, int, int], ...] = ()  # (data set, input size, images) of every image cache it reads
    notes: tuple[str, ...] = ()  # what the count assumed, in words

    @property
    def trainings(self) -> int:
        """How many runs train a model."""
        return sum(run.train_images > 0 for run in self.runs)


@dataclass(frozen=True)
class DataSizes:
    """The images each data set offers a notebook: HAM10000 (or the synthetic set), DermaMNIST and melanoma10k."""

    ham: int = 10_015
    dermamnist: tuple[int, int, int] = (7007, 1003, 2005)  # the official split; (0, 0, 0) when absent
    melanoma_train: int = 9605  # melanoma10k's train folder, split 90/5/5 by image
    melanoma_test: int = 1000  # its official test folder
    synthetic: bool = False
    external: int = 1510  # the ISIC 2018 test images notebook 07 reads (0 when absent)

    def ham_split(self) -> tuple[int, int, int]:
        """Train, validation and test images of the lesion-disjoint split (its shares, whole lesions moving together)."""
        return _shares(self.ham, SPLIT_FRACTIONS)

    def melanoma_split(self) -> tuple[int, int, int, int]:
        """Train, validation, 5% test and official test images of melanoma10k."""
        return (*_shares(self.melanoma_train, FOLDER_FRACTIONS), self.melanoma_test)


def _shares(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    train, val = round(n * fractions[0]), round(n * fractions[1])
    return train, val, n - train - val


def arm_run(arm: Arm, train: int, val: int, label: str | None = None, extra_eval: int = 0, bootstraps: int = 0) -> Run:
    """The run of arm: its epochs on `train` images, validated on `val` every epoch, then `extra_eval` images passed
    forward (tests, TTA views) and `bootstraps` summaries."""
    config = arm.train
    return Run(label or arm.name, arm.model, arm.image_size, config.batch_size, train_images=config.epochs * train,
               eval_images=config.epochs * val + extra_eval, bootstraps=bootstraps, optimizer=config.optimizer,
               eval_batch_size=config.eval_batch_size)


def tested(test: int, val: int, tta: bool = False) -> dict[str, int]:
    """What one evaluate_split adds: the test images (x TTA views), the balanced decision's validation pass and
    its two summaries (as predicted and with the balanced decision)."""
    return {"extra_eval": (TTA_VIEWS if tta else 1) * test + val, "bootstraps": 2}


def both(*evaluations: dict[str, int]) -> dict[str, int]:
    """Several evaluations' passes and summaries added up."""
    return {key: sum(e.get(key, 0) for e in evaluations) for key in ("extra_eval", "bootstraps")}


def probe_run(arm: Arm, train: int, val: int, test: int) -> Run:
    """A linear probe: features of train and val (one forward pass each), then one test evaluation."""
    return Run(arm.name, arm.model, arm.image_size, arm.train.batch_size, eval_images=train + 2 * val + test,
               bootstraps=2, eval_batch_size=arm.train.eval_batch_size)


# ---------------------------------------------------------------- one function per notebook


def plan_preprocessing(recipe: Recipe, sizes: DataSizes) -> NotebookPlan:
    """02: the leakage arm trained on an image-level and on the lesion-disjoint split, each tested once."""
    arm = recipe.arm("leakage")
    train, val, test = sizes.ham_split()
    runs = tuple(arm_run(arm, train, val, f"leakage ({kind} split)", **tested(test, val))
                 for kind in ("image-level", "lesion-disjoint"))
    return NotebookPlan(recipe.notebook, recipe.preset, runs, (("ham10000", arm.image_size, sizes.ham),))


def plan_custom_cnn(recipe: Recipe, sizes: DataSizes) -> NotebookPlan:
    """03: the reference CNN with and without dropout, tested once each; the improved CNN, tested with and without TTA."""
    train, val, test = sizes.ham_split()
    reference, no_dropout, improved = (recipe.arm(name) for name in ("reference", "reference_no_dropout", "improved"))
    runs = (arm_run(reference, train, val, **tested(test, val)), arm_run(no_dropout, train, val, **tested(test, val)),
            arm_run(improved, train, val, **both(tested(test, val), tested(test, val, tta=True))))
    loads = tuple(("ham10000", size, sizes.ham) for size in dict.fromkeys((reference.image_size, improved.image_size)))
    return NotebookPlan(recipe.notebook, recipe.preset, runs, loads)


def plan_resnet_transfer(recipe: Recipe, sizes: DataSizes, pretrained_model: str | None = None) -> NotebookPlan:
    """04: ResNet from scratch (weighted and plain loss), the probe and the fine-tuned arm, the best one with TTA,
    temperature, subgroups and Grad-CAM on every test image, then the DermaMNIST arms.

    pretrained_model: the architecture the pretrained arms use (None: the arms' own, e.g. resnet18; offline the
    notebook uses their fallback, EfficientNet-Lite0).
    """
    train, val, test = sizes.ham_split()
    scratch, plain = recipe.arm("scratch"), recipe.arm("plain_loss")
    probe, tuned = recipe.arm("probe", model=pretrained_model), recipe.arm("finetune", model=pretrained_model)
    # The best arm on validation is not known beforehand: count the fine-tuned one (the largest input) for the
    # evaluations of the best model: TTA on test (calibrate), its Grad-CAM on every test image, 16 subgroup summaries.
    best = Run("best model: TTA, temperature, subgroups, Grad-CAM", tuned.model, tuned.image_size, tuned.train.batch_size,
               eval_images=TTA_VIEWS * (test + val), backward_images=test, bootstraps=2 + 16)
    runs = [arm_run(scratch, train, val, **tested(test, val)), probe_run(probe, train, val, test),
            arm_run(tuned, train, val, **tested(test, val)), arm_run(plain, train, val, **tested(test, val)), best]
    loads = [("ham10000", size, sizes.ham) for size in dict.fromkeys((scratch.image_size, probe.image_size,
                                                                       tuned.image_size))]
    d_train, d_val, d_test = sizes.dermamnist
    if d_train and not sizes.synthetic:
        s = recipe.settings
        for px in s["dermamnist_sizes"]:
            arms = [recipe.arm("dermamnist_scratch", image_size=px)]
            if px in s["dermamnist_best_sizes"]:
                arms.append(recipe.arm("dermamnist_finetune", model=pretrained_model, image_size=px))
            runs += [arm_run(a, d_train, d_val, f"{a.name} ({px} px)", **tested(d_test, d_val)) for a in arms]
            loads.append(("ham10000", px, sum(sizes.dermamnist)))
    return NotebookPlan(recipe.notebook, recipe.preset, tuple(runs), tuple(loads))


def plan_efficientnet_binary(recipe: Recipe, sizes: DataSizes, model: str | None = None) -> NotebookPlan:
    """05: task A (melanoma10k) with the reference recipe and ours, each on two test folders; task B (HAM10000 binary),
    TTA on validation for the threshold and on test; the own-image section's temperature fit on validation."""
    train_a, val_a, test_a, official = sizes.melanoma_split()
    train_b, val_b, test_b = sizes.ham_split()
    reference, ours, ham = (recipe.arm(name, model=model) for name in ("reference", "ours", "ham"))
    two_folders = both(tested(test_a, val_a), tested(official, val_a))
    with_tta = both(tested(test_a, val_a, tta=True), tested(official, val_a, tta=True), {"bootstraps": 2})
    # task B: TTA on validation for the threshold, the TTA test, its summary at that threshold, and the own-image
    # section's temperature fitted on the validation logits
    task_b = both({"extra_eval": TTA_VIEWS * val_b + val_b, "bootstraps": 1}, tested(test_b, val_b, tta=True))
    runs = (arm_run(reference, train_a, val_a, "A reference", **two_folders),
            arm_run(ours, train_a, val_a, "A ours", **with_tta), arm_run(ham, train_b, val_b, "B ours", **task_b))
    loads = (("melanoma10k", reference.image_size, train_a + val_a + test_a + official),
             ("ham10000", ham.image_size, sizes.ham))
    return NotebookPlan(recipe.notebook, recipe.preset, runs, loads)


def plan_scaling_study(recipe: Recipe, sizes: DataSizes, can_pretrain: Callable[[str], bool],
                       done: Callable[[Any], bool] = lambda row: False) -> NotebookPlan:
    """06: every row of the grid still to run (done(row) False): its subset repeated to min_images, validated each
    round, tested once. can_pretrain says which pretrained arms run (the models whose ImageNet weights are there)."""
    from ..recipes.scaling_study import build_grid, repeats

    train, val, test = sizes.ham_split()
    grid = build_grid(recipe.settings, subset_seed=recipe.seed, can_pretrain=can_pretrain)
    pending = [row for row in grid if not done(row)]
    runs = []
    for row in pending:
        n = max(min(train, 7), round(row.fraction * train))  # nested subsets keep >= 1 lesion of each of 7 classes
        runs.append(Run(f"{row.label} f={row.fraction:g} seed {row.seed}", row.model, row.image_size, row.batch_size,
                        train_images=row.epochs * n * repeats(row, n), eval_images=row.epochs * val + test,
                        bootstraps=1))
    notes = (f"{len(grid) - len(pending)} of {len(grid)} grid rows already have result files",) if len(pending) < len(grid) else ()
    loads = tuple(("ham10000", size, sizes.ham) for size in dict.fromkeys(row.image_size for row in grid))
    return NotebookPlan(recipe.notebook, recipe.preset, tuple(runs), loads, notes)


def plan_external_test(recipe: Recipe, sizes: DataSizes, pretrained: Callable[[str], bool],
                       missing: Callable[[str], bool] = lambda name: False) -> NotebookPlan:
    """07: each source model still to train (missing(name); none by default, as in a series, where 03, 04 and 05
    run first) trained by its recipe and tested once, then every model's logits with TTA on validation, test and the
    external set, and the metric summaries."""
    from ..external_test import SOURCE_MODELS
    from ..recipes import resolve_recipe

    train, val, test = sizes.ham_split()
    runs, loads = [], []
    for name, (reference, _, _) in SOURCE_MODELS.items():
        notebook, _, arm_name = reference.partition(":")
        arm = resolve_recipe(notebook, recipe.preset, seed=recipe.seed).arm(arm_name)
        arm = arm.using(_weights_or_fallback(arm, pretrained), None) if arm.pretrained else arm
        if missing(name):
            runs.append(arm_run(arm, train, val, f"{name}: trained by its recipe", extra_eval=test + 2 * val, bootstraps=1))
        runs.append(Run(f"{name}: validation, test and external logits with TTA", arm.model, arm.image_size,
                        arm.train.batch_size, eval_images=TTA_VIEWS * (val + test + sizes.external), bootstraps=5,
                        eval_batch_size=arm.train.eval_batch_size))
        loads.append(("ham10000", arm.image_size, sizes.ham))
    return NotebookPlan(recipe.notebook, recipe.preset, tuple(runs), tuple(dict.fromkeys(loads)))


def plan_notebook(recipe: Recipe | None, notebook: str, preset: str, sizes: DataSizes,
                  pretrained: Callable[[str], bool]) -> NotebookPlan:
    """The plan of one notebook of the series under its resolved recipe (None for a notebook without one, e.g. 01).

    pretrained(model) says whether a model's ImageNet weights can be had; where they cannot, a pretrained arm uses
    its fallback, as the notebooks do.
    """
    if recipe is None:
        return NotebookPlan(notebook, preset, ())
    if notebook == "02_preprocessing":
        return plan_preprocessing(recipe, sizes)
    if notebook == "03_custom_cnn":
        return plan_custom_cnn(recipe, sizes)
    if notebook == "04_resnet_transfer":
        return plan_resnet_transfer(recipe, sizes, _weights_or_fallback(recipe.arm("finetune"), pretrained))
    if notebook == "05_efficientnet_binary":
        return plan_efficientnet_binary(recipe, sizes, _weights_or_fallback(recipe.arm("reference"), pretrained))
    if notebook == "06_scaling_study":
        return plan_scaling_study(recipe, sizes, pretrained)
    if notebook == "07_external_test":
        return plan_external_test(recipe, sizes, pretrained)
    raise ValueError(f"no cost plan for notebook {notebook!r}")


def _weights_or_fallback(arm: Arm, pretrained: Callable[[str], bool]) -> str:
    return arm.model if pretrained(arm.model) or not arm.fallback else arm.fallback
