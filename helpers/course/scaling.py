"""The scaling study's library: nested training subsets, a grid of runs, one result file per run, resume and merge
(python -m helpers.scaling is its command line; its docstring says how shards run).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from ..training.augment import AugmentConfig
from ..data.dataset import SplitData, load_split_data
from ..data.source import models_home
from ..data.splits import majority_dx
from ..data.tensors import ImageData
from ..core.errors import DataError, WeightsUnavailableError
from ..evaluation.splits import evaluate_split
from ..core.io import write_json
from ..models import (build_classifier, count_parameters, ensure_weights, flops_per_image, pretrained_available,
                     weights_file)
from .recipes.scaling_study import FIXED_RECIPE  # the training recipe of every row, part of its id
from .recipes.scaling_study import ScalingRow, build_grid, image_size_of, repeats  # noqa: F401 - the grid's rows
from ..training.loop import TrainConfig, fit

NOTEBOOK = "06_scaling_study"
RECORD_FIELDS = ("id", "label", "model", "pretrained", "parameters", "flops_per_image", "image_size", "fraction",
                 "n_train", "n_train_lesions", "seed", "epochs_run", "best_epoch", "passes", "train_images_seen",
                 "train_compute_flops", "wall_time_s", "train_time_s", "val_balanced_accuracy", "accuracy",
                 "balanced_accuracy", "macro_auc", "macro_f1", "error")
# What merging needs of a result file: the flat fields and the summary's per-class recall and interval.
REQUIRED_KEYS = (*RECORD_FIELDS, "summary.per_class_recall", "summary.ci95.balanced_accuracy")


# ---------------------------------------------------------------- nested training subsets


def lesion_ranks(rows: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Each lesion's class (majority dx), size and rank in one seeded shuffle of its class stratum."""
    for column in ("lesion_id", "dx"):
        if column not in rows:
            raise ValueError(f"nested subsets need the column {column!r}; found {', '.join(rows.columns)}")
    lesions = rows.groupby("lesion_id", observed=True, sort=True).agg(dx=("dx", majority_dx), size=("dx", "size"))
    rng = np.random.default_rng(seed)
    lesions["rank"] = 0
    lesions["stratum_size"] = 0
    for _, members in lesions.groupby("dx", sort=True):
        lesions.loc[members.index[rng.permutation(len(members))], "rank"] = np.arange(len(members))
        lesions.loc[members.index, "stratum_size"] = len(members)
    return lesions


def nested_subsets(rows: pd.DataFrame, fractions: Iterable[float], seed: int = 0) -> dict[float, np.ndarray]:
    """Positions in rows of each fraction's subset: the first ceil(f * n) lesions of every class stratum.

    One seeded order of lesions per stratum serves every fraction, so a smaller subset is contained in
    a larger one, whole lesions move together, and every class keeps at least one lesion.
    """
    lesions = lesion_ranks(rows, seed)
    subsets = {}
    for fraction in fractions:
        if not 0 < fraction <= 1:
            raise ValueError(f"fractions must lie in (0, 1]; got {fraction}")
        quota = np.ceil(fraction * lesions["stratum_size"] - 1e-9)  # 0.1 * 30 is 3.0000000000000004
        kept = lesions.index[lesions["rank"] < quota]
        subsets[float(fraction)] = np.flatnonzero(rows["lesion_id"].isin(kept).to_numpy())
    return subsets


def subset_table(rows: pd.DataFrame, subsets: dict[float, np.ndarray]) -> pd.DataFrame:
    """Lesions, images and images per class of each subset (rows: fractions)."""
    table = {}
    for fraction, positions in subsets.items():
        part = rows.iloc[positions]
        table[fraction] = {"lesions": part["lesion_id"].nunique(), "images": len(part),
                           **part["dx"].astype(str).value_counts().sort_index().to_dict()}
    return pd.DataFrame.from_dict(table, orient="index").fillna(0).astype(int).rename_axis("fraction")


# ---------------------------------------------------------------- the grid


def pretrained_status(models: Iterable[str], download: Iterable[str] = ()) -> pd.DataFrame:
    """For each model: whether its ImageNet weights are available here, and if not, why.

    Models in `download` whose weights are not cached are downloaded first where there is network (ensure_weights).
    """
    table, download = [], set(download)
    for model in dict.fromkeys(models):
        try:
            cached = pretrained_available(model)
            (ensure_weights if model in download else weights_file)(model)
            table.append((model, True, "ImageNet weights found locally" if cached else "ImageNet weights downloaded"))
        except WeightsUnavailableError as err:
            reason = "not cached, and the download failed" if model in download else "not cached (not downloaded)"
            table.append((model, False, f"ImageNet weights {reason}: {str(err).splitlines()[0][:120]}"))
        except ValueError:
            table.append((model, False, "no published ImageNet weights"))
    return pd.DataFrame(table, columns=["model", "available", "status"]).set_index("model")


def grid_table(rows: Sequence[ScalingRow]) -> pd.DataFrame:
    """Seeds per arm (rows) and fraction (columns): the shape of a grid at a glance."""
    cells = pd.DataFrame([{"arm": r.label, "fraction": r.fraction} for r in rows])
    return pd.crosstab(cells["arm"], cells["fraction"]).rename_axis(columns="fraction (seeds)")


def dropped_cells(rows: Sequence[ScalingRow], reference: Sequence[ScalingRow]) -> pd.DataFrame:
    """What a grid leaves out of a reference grid, per arm of the reference: runs kept and cells dropped."""
    have = {(r.label, r.fraction, r.seed) for r in rows}
    sizes = {r.label: r.image_size for r in rows}
    table = []
    for arm in dict.fromkeys(r.label for r in reference):
        cells = [(r.fraction, r.seed) for r in reference if r.label == arm]
        missing = [c for c in cells if (arm, *c) not in have]
        if len(missing) == len(cells):
            dropped = "whole arm"
        else:
            dropped = ", ".join(f"{f:g} seed {s}" for f, s in missing) or "none"
        reference_size = next(r.image_size for r in reference if r.label == arm)
        table.append({"arm": arm, "runs in reference": len(cells), "runs here": len(cells) - len(missing),
                      "dropped (fraction, seed)": dropped,
                      "image size": f"{sizes[arm]} px (reference {reference_size})" if arm in sizes else "–"})
    return pd.DataFrame(table).set_index("arm")


# ---------------------------------------------------------------- data and row ids


@dataclass
class GridData:
    """The split data of one folder, loaded once per image size (the split itself is the same for every size)."""

    root: str | Path
    name: str
    seed: int = 0
    max_images: int | None = None
    device: str | torch.device | None = None
    progress: bool = True
    loaded: dict[int, SplitData] = field(default_factory=dict, repr=False)

    def __call__(self, image_size: int) -> SplitData:
        """The split data at image_size (loaded on first use)."""
        if image_size not in self.loaded:
            self.loaded[image_size] = load_split_data(self.root, image_size, seed=self.seed, max_images=self.max_images,
                                                      device=self.device, name=self.name, progress=self.progress)
        return self.loaded[image_size]


def data_fingerprint(data: SplitData, name: str) -> dict[str, Any]:
    """What identifies the data of a run: source name, split kind, image counts and a hash of every image's split."""
    pairs = data.index[["image_id", "split"]].astype(str).sort_values("image_id")
    digest = hashlib.sha256("\n".join(pairs["image_id"] + "," + pairs["split"]).encode()).hexdigest()[:16]
    return {"source": name, "split": data.split_kind, "n_images": int(len(data.index)),
            **{f"n_{part}": int(len(data.parts[part])) for part in data.parts}, "hash": digest}


def row_id(row: ScalingRow, fingerprint: dict[str, Any]) -> str:
    """A stable, readable id: arm, fraction and seed, then a hash of the row, the fixed recipe and the data."""
    payload = json.dumps({"row": dataclasses.asdict(row), "recipe": FIXED_RECIPE, "data": fingerprint}, sort_keys=True)
    arm = row.model + ("-pretrained" if row.pretrained else "")
    return f"{arm}-f{row.fraction:g}-s{row.seed}-{hashlib.sha256(payload.encode()).hexdigest()[:10]}"


def results_folder(preset: str) -> Path:
    """The default folder of a preset's result files: models/scaling/<preset>/ (git-ignored)."""
    return models_home() / "scaling" / preset


# ---------------------------------------------------------------- running rows


def train_config(row: ScalingRow, progress: bool = False) -> TrainConfig:
    """The fixed recipe with this row's epochs, batch size, learning rate, weight decay and seed."""
    fixed = {k: v for k, v in FIXED_RECIPE.items() if k not in ("augment", "batchnorm_momentum")}
    return TrainConfig(epochs=row.epochs, batch_size=row.batch_size, lr=row.lr, weight_decay=row.weight_decay,
                       augment=AugmentConfig(**FIXED_RECIPE["augment"]), seed=row.seed, progress=progress, **fixed)


def training_subset(data: SplitData, row: ScalingRow) -> tuple[ImageData, np.ndarray]:
    """The row's training images, repeated `repeats` times, and their positions in the train split."""
    positions = nested_subsets(data.rows("train"), [row.fraction], row.subset_seed)[row.fraction]
    times = repeats(row, len(positions))
    if times == 1 and len(positions) == len(data.train):
        return data.train, positions  # the whole split: no copy
    return data.train.subset(torch.as_tensor(np.tile(positions, times))), positions


def run_row(row: ScalingRow, data: SplitData, fingerprint: dict[str, Any], n_boot: int = 1000,
            progress: bool = False) -> dict[str, Any]:
    """Train and test one row; its result record (JSON-ready)."""
    started = time.time()
    train, positions = training_subset(data, row)
    torch.manual_seed(row.seed)
    model = build_classifier(row.model, data.classes, row.image_size, pretrained=row.pretrained)
    model = model.to(data.train.device)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = FIXED_RECIPE["batchnorm_momentum"]
    parameters, flops = count_parameters(model), flops_per_image(model, row.image_size)
    result = fit(model, train, data.val, train_config(row, progress))
    summary = evaluate_split(model, data, "test", n_boot=n_boot, seed=0, balanced_decision=False).summary
    seen = int(result.history["train_images"].sum())
    lesions = data.rows("train").iloc[positions]["lesion_id"].nunique()
    record = {
        "id": row_id(row, fingerprint), "label": row.label, "model": row.model, "pretrained": row.pretrained,
        "parameters": int(parameters), "flops_per_image": int(flops), "image_size": row.image_size,
        "fraction": row.fraction, "n_train": int(len(positions)), "n_train_lesions": int(lesions), "seed": row.seed,
        "epochs_run": int(len(result.history)), "best_epoch": int(result.best_epoch),
        "passes": round(seen / len(positions), 2), "train_images_seen": seen,
        # Training compute ≈ 3 × forward FLOPs × images seen (backward ≈ 2 forwards); validation not counted.
        "train_compute_flops": float(3 * flops * seen), "wall_time_s": round(time.time() - started, 1),
        "train_time_s": round(float(result.history["train_time_s"].sum()), 1),
        "val_balanced_accuracy": float(result.best_score),
        **{key: summary[key] for key in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1")},
        "error": 1.0 - summary["balanced_accuracy"],
        "summary": summary, "settings": dataclasses.asdict(row), "data": fingerprint,
        "history": json.loads(result.history.to_json(orient="records")),
        "device": str(data.train.device), "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return record


def record_problem(record: Any, expected_id: str | None = None) -> str | None:
    """Why parsed JSON is not a usable result record (None when it is): not an object, fields missing, another row's."""
    if not isinstance(record, dict):
        return f"holds a JSON {type(record).__name__}, not a result record"
    missing = [key for key in REQUIRED_KEYS if _lacks(record, key)]
    if missing:
        return (f"is not a result record of helpers.scaling: it lacks {', '.join(missing[:4])}"
                + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""))
    if expected_id is not None and record["id"] != expected_id:
        return f"holds the record of row {record['id']!r}, not of {expected_id!r}"
    return None


def _lacks(record: dict[str, Any], dotted: str) -> bool:
    value: Any = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return True
        value = value[key]
    return False


def parse_record(path: Path, expected_id: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a usable result file at path, else (None, why it is not usable)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        return None, f"is not valid JSON ({err})"
    problem = record_problem(record, expected_id)
    return (None, problem) if problem else (record, None)


def read_record(path: Path, expected_id: str, set_aside: bool = True) -> dict[str, Any] | None:
    """A finished row's record at path, or None when there is none.

    A corrupt or foreign file there is moved aside as `<name>.corrupt`, with a warning, so that the row
    runs again without destroying it (set_aside=False leaves it in place).
    """
    if not path.is_file():
        return None
    record, problem = parse_record(path, expected_id)
    if problem and set_aside:
        aside = _set_aside(path)
        warnings.warn(f"{path} {problem}: moved aside as {aside.name}; its row runs again", RuntimeWarning, stacklevel=2)
    return record


def _set_aside(path: Path) -> Path:
    aside, n = path.with_name(f"{path.name}.corrupt"), 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.{n}.corrupt")
    return path.replace(aside)


def pending_rows(rows: Sequence[ScalingRow], data: GridData, results_dir: str | Path, resume: bool = True) -> list[ScalingRow]:
    """The rows run_grid would train: all of them without resume, else those without a usable result file."""
    if not resume:
        return list(rows)
    pending = []
    for row in rows:
        identifier = row_id(row, data_fingerprint(data(row.image_size), data.name))
        path = Path(results_dir) / f"{identifier}.json"
        if not path.is_file() or parse_record(path, identifier)[0] is None:
            pending.append(row)
    return pending


def run_grid(rows: Sequence[ScalingRow], data: GridData, results_dir: str | Path, resume: bool = True,
             n_boot: int = 1000, progress: bool = True) -> list[dict[str, Any]]:
    """Run every row not finished yet (all of them when resume is False), one result file each; all records in row order."""
    results_dir = Path(results_dir)
    records, ran = [], 0
    bar = tqdm(rows, desc="scaling grid", unit="run", disable=not progress, dynamic_ncols=True)
    for row in bar:
        split_data = data(row.image_size)
        fingerprint = data_fingerprint(split_data, data.name)
        identifier = row_id(row, fingerprint)
        path = results_dir / f"{identifier}.json"
        record = read_record(path, identifier) if resume else None
        if record is None:
            bar.set_postfix_str(f"{row.label} f={row.fraction:g} seed {row.seed}", refresh=False)
            record = run_row(row, split_data, fingerprint, n_boot)
            write_json(record, path)
            ran += 1
        records.append(record)
    bar.close()
    if progress:
        print(f"{ran} run(s) trained, {len(rows) - ran} taken from finished result files in {results_dir.name}/")
    return records


# ---------------------------------------------------------------- merging results


def load_records(results_dir: str | Path, strict: bool = False) -> list[dict[str, Any]]:
    """Every result record in a folder (e.g. files merged from several machines), sorted by file name.

    A file that is not a usable record, or repeats another file's row, is skipped with a warning naming
    it; with strict, DataError names it instead.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise DataError(f"results folder {folder} does not exist: run the grid first "
                        "(python -m helpers.scaling --preset P) or name the folder with --results")
    records: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")):
        record, problem = parse_record(path)
        if record is not None and record["id"] in seen:
            record, problem = None, f"repeats the row {record['id']} of {seen[record['id']].name}"
        if problem:
            if strict:
                raise DataError(f"{path} {problem} (--strict: no table written)")
            warnings.warn(f"{path} {problem}: skipped", RuntimeWarning, stacklevel=2)
            continue
        seen[record["id"]] = path
        records.append(record)
    return records


def results_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: the fields of `scaling_rows` as a DataFrame."""
    return pd.DataFrame(scaling_rows(records))


def scaling_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The metrics JSON's `scaling` list: every run's flat fields, per-class recall and balanced-accuracy CI."""
    return [{**{k: r[k] for k in RECORD_FIELDS}, "per_class_recall": r["summary"]["per_class_recall"],
             "ci95_balanced_accuracy": r["summary"]["ci95"]["balanced_accuracy"]} for r in records]


def contract_models(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The metrics JSON's `models`: each arm trained on the whole training split, first seed."""
    full = [r for r in records if r["fraction"] == 1.0]
    first = {}
    for record in sorted(full, key=lambda r: r["seed"]):
        first.setdefault(record["label"], record)
    return {f"{label}, 100% of train, seed {r['seed']}": r["summary"] for label, r in first.items()}


# ---------------------------------------------------------------- command line


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' (1 <= K <= N) as (K, N)."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like K/N, e.g. 2/4; got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 1 <= K <= N; got {text!r}")
    return k, n
