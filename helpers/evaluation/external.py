"""A checkpoint scored on labelled images it never saw, the library behind python -m helpers.evaluate (its docstring says what is read, scored and counted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.images import read_image
from ..data.labels import BINARY_CLASSES, DX_CLASSES, MALIGNANT_DX
from .decision import balanced_decision_summary
from ..core.errors import DataError
from ..training.inference import predict_logits
from .metrics import apply_temperature, bootstrap_ci, metrics_summary
from ..models import load_checkpoint
from .prediction import find_files

ID_COLUMNS = ("image_id", "image", "file", "filename")
ONE_HOT = {"MEL": "mel", "NV": "nv", "BCC": "bcc", "AKIEC": "akiec", "BKL": "bkl", "DF": "df", "VASC": "vasc"}
SHOWN = 5  # names listed per excluded kind; all are counted


def read_labels(path: str | Path) -> pd.DataFrame:
    """The labels CSV as columns key (image id), dx and group (lesion id, else the image id)."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"--labels {path}: cannot be read as CSV ({err})") from err
    id_column = next((c for c in ID_COLUMNS if c in table.columns), None)
    if id_column is None:
        raise DataError(f"--labels {path} has no image column: expected one of {', '.join(ID_COLUMNS)}; "
                        f"found {', '.join(table.columns)}")
    if "dx" in table.columns:
        dx = table["dx"].str.strip().str.lower()
    elif set(ONE_HOT) <= set(table.columns):
        hot = table[list(ONE_HOT)].apply(pd.to_numeric, errors="coerce").fillna(0)
        dx = hot.idxmax(axis=1).map(ONE_HOT).where(hot.max(axis=1) > 0, "")
    else:
        raise DataError(f"--labels {path} has no dx column (nor the one-hot columns {', '.join(ONE_HOT)}); "
                        f"found {', '.join(table.columns)}")
    if table.empty:
        raise DataError(f"--labels {path} has a header but no rows")
    keys = table[id_column].map(lambda name: Path(name.strip()).stem)
    duplicated = keys[keys.duplicated()].unique()
    if len(duplicated):
        raise DataError(f"--labels {path}: image {duplicated[0]} is labelled more than once ({len(duplicated)} such)")
    groups = table["lesion_id"] if "lesion_id" in table.columns else keys
    return pd.DataFrame({"key": keys, "dx": dx, "group": groups.where(groups != "", keys)})


def match_images(files: list[Path], labels: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Labelled files with a known dx (path, key, dx, group) and what was excluded, by kind."""
    by_key = {path.stem: path for path in files}
    known = labels["dx"].isin(DX_CLASSES)
    excluded = {"images without labels": sorted(set(by_key) - set(labels["key"])),
                "labels without images": sorted(set(labels["key"]) - set(by_key)),
                "unknown dx codes": [f"{k} ({dx or 'empty'})" for k, dx in labels.loc[~known, ["key", "dx"]].to_numpy()
                                     if k in by_key]}
    usable = labels[known & labels["key"].isin(by_key)].copy()
    usable["path"] = usable["key"].map(by_key)
    return usable.reset_index(drop=True), excluded


def evaluate_checkpoint(checkpoint: str | Path, images: str | Path, labels: str | Path, tta: bool | None = None,
                        n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Metrics of the checkpoint on the labelled images, with what was excluded and why."""
    model, payload = load_checkpoint(checkpoint)
    extra = payload.get("extra") or {}
    binary = list(model.classes) == list(BINARY_CLASSES)
    if not binary and not set(model.classes) <= set(DX_CLASSES):
        raise DataError(f"--checkpoint {checkpoint} predicts {', '.join(model.classes)}: neither HAM10000's dx codes "
                        f"nor {'/'.join(BINARY_CLASSES)}, so dx labels cannot score it")
    files, others = find_files(images)
    others = [p for p in others if p.resolve() != Path(labels).resolve()]
    if not files:
        raise DataError(f"--images {images} holds no image files (no format Pillow reads)")
    usable, excluded = match_images(files, read_labels(labels))
    excluded["not images"] = [str(p.relative_to(images)) if p.is_relative_to(images) else str(p) for p in others]
    if not binary:
        foreign = ~usable["dx"].isin(model.classes)
        excluded["dx the checkpoint does not predict"] = [f"{k} ({dx})" for k, dx in usable.loc[foreign, ["key", "dx"]].to_numpy()]
        usable = usable[~foreign].reset_index(drop=True)
    arrays, unreadable, flagged = [], [], []
    for row in usable.itertuples():
        try:
            pixels, warnings = read_image(row.path, model.image_size, model.resize_policy)
        except DataError as err:
            unreadable.append(str(err))
            usable = usable.drop(index=row.Index)
            continue
        arrays.append(pixels)
        flagged += warnings
    excluded["unreadable files"] = unreadable
    if usable.empty:
        raise DataError("no image could be scored: " + _excluded_line(excluded))
    usable = usable.reset_index(drop=True)
    tta = bool(extra.get("tta", False)) if tta is None else tta
    logits = predict_logits(model, torch.from_numpy(np.stack(arrays)), tta=tta)
    temperature = float(extra.get("temperature", 1.0))
    probs = apply_temperature(logits, temperature)
    y_true = _targets(usable["dx"], model.classes, binary)
    groups = usable["group"].to_numpy()
    threshold = float(extra.get("threshold", 0.5))
    result = {"checkpoint": str(checkpoint), "images": str(images), "labels": str(labels),
              "classes": list(model.classes), "n_images": int(len(usable)), "n_lesions": int(len(set(groups))),
              "tta": tta, "temperature": temperature, "threshold": threshold if binary else None,
              "excluded": {kind: {"count": len(names), "examples": names[:SHOWN]} for kind, names in excluded.items()},
              "flagged": {"count": len(flagged), "examples": flagged[:SHOWN]},
              "metrics": metrics_summary(y_true, probs, model.classes, groups, n_boot=n_boot, seed=seed,
                                         threshold=threshold)}
    result["malignant_vs_benign"] = _malignant_auc(usable["dx"], probs, model.classes, groups, n_boot, seed)
    decision = extra.get("decision")
    if not binary and isinstance(decision, dict) and "tau" in decision and "priors" in decision:
        priors = np.asarray(decision["priors"], dtype=np.float64)
        result["balanced_decision"] = balanced_decision_summary(y_true, probs, priors, float(decision["tau"]),
                                                                model.classes, groups, n_boot=n_boot, seed=seed)
    return result


def _targets(dx: pd.Series, classes: list[str], binary: bool) -> np.ndarray:
    if binary:
        return dx.isin(MALIGNANT_DX).to_numpy().astype(np.int64)
    return dx.map({c: i for i, c in enumerate(classes)}).to_numpy().astype(np.int64)


def _malignant_auc(dx: pd.Series, probs: np.ndarray, classes: list[str], groups: np.ndarray, n_boot: int,
                   seed: int) -> dict[str, Any]:
    """AUC of P(malignant) (the sum over mel, bcc, akiec for a 7-class model) against the binary truth, with its CI."""
    from sklearn.metrics import roc_auc_score

    malignant = dx.isin(MALIGNANT_DX).to_numpy().astype(np.int64)
    columns = [i for i, c in enumerate(classes) if c in MALIGNANT_DX or c == "malignant"]
    score = probs[:, columns].sum(1)
    if len(np.unique(malignant)) < 2:
        return {"auc": None, "ci95": [None, None], "note": "needs both malignant and benign images"}
    two = np.stack([1 - score, score], axis=1)
    low, high = bootstrap_ci(malignant, two, groups, ("auc",), n_boot=n_boot, seed=seed)["auc"]
    return {"auc": float(roc_auc_score(malignant, score)), "ci95": [low, high],
            "n_malignant": int(malignant.sum()), "n_benign": int(len(malignant) - malignant.sum())}


def _excluded_line(excluded: dict[str, Any]) -> str:
    counts = {kind: len(v) if isinstance(v, list) else v["count"] for kind, v in excluded.items()}
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "nothing excluded"


def result_table(result: dict[str, Any]) -> str:
    """The printed summary: the main metrics with their intervals, then per-class recall."""
    m, ci = result["metrics"], result["metrics"]["ci95"]

    def line(name: str, value: Any, interval: Any) -> str:
        if value is None:
            return f"  {name:<28} –"
        band = f" (95% CI {interval[0]:.3f}–{interval[1]:.3f})" if interval and None not in interval else ""
        return f"  {name:<28} {value:.3f}{band}"

    rows = [f"{result['n_images']} images of {result['n_lesions']} lesions"
            + (f"; excluded: {_excluded_line(result['excluded'])}" if any(v['count'] for v in result['excluded'].values()) else ""),
            line("accuracy", m["accuracy"], ci.get("accuracy")),
            line("balanced accuracy", m["balanced_accuracy"], ci.get("balanced_accuracy")),
            line("macro AUC", m["macro_auc"], ci.get("macro_auc")),
            line("malignant vs benign AUC", result["malignant_vs_benign"]["auc"], result["malignant_vs_benign"]["ci95"])]
    if "balanced_decision" in result:
        d = result["balanced_decision"]
        rows += [line("balanced decision accuracy", d["accuracy"], None),
                 line("balanced decision bal. acc.", d["balanced_accuracy"], d["ci95"]["balanced_accuracy"])]
    rows += ["  per-class recall: " + ", ".join(f"{c} {'–' if r is None else f'{r:.3f}'}"
                                                for c, r in m["per_class_recall"].items())]
    return "\n".join(rows)
