"""A notebook's last call: its metrics assembled, validated against the contract and saved, and its best model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data.source import models_home
from ..models import save_checkpoint
from .series import metrics_header, save_metrics
from .results import validate_metrics


def finish(config: Any, *, n_images: int, split: str, models: Mapping[str, Any] | None = None,
           extras: Mapping[str, Any] | None = None, summary: str | None = None, headline: Any = None,
           best: tuple[Any, str] | tuple[Any, str, Any] | None = None, checkpoint: str | None = None) -> dict[str, Any]:
    """Assemble (metrics_header + models + extras), validate and save config.notebook's metrics; save `best`.

    best is (model, name) or (model, name, arm or TrainConfig): its checkpoint goes to models/<checkpoint>
    (default <notebook>.pt) with the run's config and the arm's training recipe. Raises ValueError listing every
    problem when the metrics break the contract (nothing is saved then). headline may be a function of the
    assembled metrics. Returns the saved metrics.
    """
    metrics = metrics_header(config, config.notebook, n_images, split, config.started)
    metrics["models"] = dict(models or {})
    metrics.update(extras or {})
    if summary is not None:
        metrics["summary"] = summary
    headline = headline(metrics) if callable(headline) else headline  # e.g. the best of the models just added
    if headline is not None:
        metrics["headline"] = headline
    problems = validate_metrics(metrics, config.notebook)
    if problems:
        raise ValueError(f"{config.notebook}: the metrics break the contract: " + "; ".join(problems))
    save_metrics(metrics)
    if best is not None:
        model, name, *trained = best
        recipe = getattr(trained[0], "train", trained[0]).to_dict() if trained else None
        path = save_checkpoint(model, models_home() / (checkpoint or f"{config.notebook}.pt"),
                               {"run": config.to_dict(), **({"train": recipe} if recipe else {})}, {"model": name})
        print(f"best model ({name}): python -m helpers.predict --checkpoint {shown_path(path)} --images DIR --out preds.csv")
    return metrics


def shown_path(path: Path) -> str:
    """path as shown to a learner: models/<name> when under the project's models folder, else as it is."""
    return f"models/{path.name}" if path.parent == models_home() and path.parent.name == "models" else str(path)
