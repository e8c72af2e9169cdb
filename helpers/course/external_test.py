"""Notebook 07's models and data: the checkpoints of 03, 04 and 05 (trained through their recipes when missing), and
their logits on the validation split, the lesion-disjoint test split and an external test set.

The external set is a folder with images/ and labels.csv (image_id,dx), e.g. the ISIC 2018 Task 3 test
(helpers.data.find_isic2018_test). It has no lesion ids, so its groups are image ids and its intervals resample
images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core.errors import CheckpointError, DataError
from ..data.dataset import load_split_data
from ..data.images import cached_images, list_images
from ..data.labels import MALIGNANT_DX
from ..data.source import data_home
from ..evaluation.choices import ModelOutputs, SplitOutputs
from ..evaluation.decision import class_priors
from ..evaluation.external import match_images, read_labels
from ..models import load_checkpoint
from ..training.inference import predict_logits

# name -> (the arm that trains it, its checkpoint file, its task); the names are the ones every table shows
SOURCE_MODELS: dict[str, tuple[str, str, str]] = {
    "03 improved CNN": ("03_custom_cnn:improved", "03_improved_cnn.pt", "dx"),
    "04 transfer (best on validation)": ("04_resnet_transfer:finetune", "04_resnet_transfer.pt", "dx"),
    "05 binary EfficientNet": ("05_efficientnet_binary:ham", "05_ham10000_binary_efficientnet.pt", "binary"),
}
ENSEMBLE_MEMBERS = ("03 improved CNN", "04 transfer (best on validation)")  # the ensemble's members, 03 then 04
RUN_KEYS = ("preset", "data_source", "max_images", "seed", "split_version")  # what a checkpoint must share with this run


@dataclass(frozen=True)
class ExternalSet:
    """A labelled external test folder: one row per usable image (key, dx, path) and what was left out, by kind."""

    name: str
    root: Path
    table: pd.DataFrame
    excluded: dict[str, int]

    def images(self, size: int, policy: str) -> np.ndarray:
        """The images as a (N, size, size, 3) uint8 array, cached under data/cache like HAM10000's."""
        return cached_images(self.table["path"].tolist(), size, data_home() / "cache", policy,
                             name=f"external-{len(self.table)}img")


def load_external(root: str | Path, name: str = "ISIC 2018 test", max_images: int | None = None,
                  seed: int = 0) -> ExternalSet:
    """The labelled images of root (images/ and labels.csv); max_images keeps an equal share of each dx, at random."""
    root = Path(root)
    files, _ = list_images(root / "images")
    if not files:
        raise DataError(f"{root / 'images'} holds no image files")
    usable, excluded = match_images(files, read_labels(root / "labels.csv"))
    if max_images and len(usable) > max_images:
        per_class = max(1, max_images // usable["dx"].nunique())
        kept = [rows.sample(min(len(rows), per_class), random_state=seed).index for _, rows in usable.groupby("dx")]
        usable = usable.loc[np.concatenate(kept)].sort_values("key").reset_index(drop=True)
    return ExternalSet(name, root, usable, {kind: len(names) for kind, names in excluded.items()})


def checkpoint_problem(path: Path, run: dict[str, Any]) -> str | None:
    """Why the checkpoint at path cannot stand for this run (missing, unreadable, another preset or data), or None."""
    if not path.is_file():
        return "no checkpoint yet"
    try:
        _, payload = load_checkpoint(path)
    except CheckpointError as err:
        return str(err)
    saved = (payload.get("config") or {}).get("run") or {}
    differs = [f"{key} {saved.get(key)!r} (this run: {run.get(key)!r})" for key in RUN_KEYS if saved.get(key) != run.get(key)]
    return "trained with " + ", ".join(differs) if differs else None


def missing_models(models_dir: Path, run: dict[str, Any]) -> dict[str, str]:
    """Each source model whose checkpoint cannot be used here, with the reason."""
    problems = {name: checkpoint_problem(models_dir / filename, run) for name, (_, filename, _) in SOURCE_MODELS.items()}
    return {name: problem for name, problem in problems.items() if problem}


def train_missing(config: Any, missing: dict[str, str]) -> None:
    """Train each missing model through its recipe (helpers.course.train_recipe) into its checkpoint."""
    from .train_recipe import train_recipe

    for name, problem in missing.items():
        reference, filename, _ = SOURCE_MODELS[name]
        print(f"{name}: {problem}; training it with its recipe {reference} …", flush=True)
        summary = train_recipe(reference, config.preset, config.models_dir / filename, data_dir=config.data_root,
                               seed=config.seed, max_images=config.max_images)
        print(f"  {summary['epochs_run']} epochs, best {summary['best_epoch']}; checkpoint {filename}")


def model_outputs(name: str, config: Any, external: ExternalSet | None, tta: bool = True) -> tuple[ModelOutputs, str]:
    """The model's logits on val, test (and the external set) with flip TTA, and its description."""
    _, filename, task = SOURCE_MODELS[name]
    model, payload = load_checkpoint(config.models_dir / filename)
    data = load_split_data(config.data_root, model.image_size, task=task, seed=config.seed,
                           max_images=config.max_images, policy=model.resize_policy, name=config.data_source,
                           progress=False)
    if list(data.classes) != list(model.classes):
        raise DataError(f"checkpoint {filename} predicts {', '.join(model.classes)}; the data has {', '.join(data.classes)}")
    splits = {}
    for split in ("val", "test"):
        rows = data.rows(split)
        splits[split] = SplitOutputs(_logits(model, data.parts[split].images, tta), data.parts[split].labels.cpu().numpy(),
                                     rows["dx"].astype(str).to_numpy(), rows["lesion_id"].astype(str).to_numpy())
    if external is not None:
        dx = external.table["dx"].to_numpy()
        truth = (np.isin(dx, list(MALIGNANT_DX)).astype(np.int64) if task == "binary"
                 else np.array([list(model.classes).index(d) for d in dx]))
        images = torch.from_numpy(np.ascontiguousarray(external.images(model.image_size, model.resize_policy)))
        splits[external.name] = SplitOutputs(_logits(model, images, tta), truth, dx, external.table["key"].to_numpy())
    arch = payload.get("arch", {}).get("name", "?")
    shown = (payload.get("extra") or {}).get("model") or arch
    priors = class_priors(data.train.labels.cpu().numpy(), len(model.classes))
    return ModelOutputs(name, list(model.classes), splits, priors), f"{shown}, {model.image_size} px"


def _logits(model: torch.nn.Module, images: Any, tta: bool) -> np.ndarray:
    return predict_logits(model, images, tta=tta).numpy().astype(np.float64)
