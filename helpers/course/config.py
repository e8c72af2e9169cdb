"""Presets and the one resolved configuration every notebook prints and saves beside its results.

One merge, in one place: a notebook's parameters -> its preset -> its recipe (helpers.course.recipes).
`setup(notebook, preset=..., data_dir=..., seed=..., **parameters)` returns that Config and prints its banner.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data.source import DataSource, describe, models_home, resolve_data_source
from ..data.splits import SPLIT_VERSION
from ..core.machine import hardware_description
from ..core.precision import describe_amp
from .recipes import NOTEBOOKS, Arm, Recipe, Sizing, resolve_recipe, sizing_for
from ..core.validate import check_int, check_number

PRESET_ENV = "SKIN_LESION_PRESET"

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"image_size": 32, "epochs": 1, "batch_size": 32, "max_images": 210},
    "cpu": {"image_size": 64, "epochs": 8, "batch_size": 64, "max_images": None},
    "gpu": {"image_size": 128, "epochs": 25, "batch_size": 128, "max_images": None},
    "full": {"image_size": 128, "epochs": 25, "batch_size": 128, "max_images": None},
}


@dataclass(frozen=True)
class Config:
    """A notebook's resolved settings: preset, device, data and training sizes."""

    preset: str
    device: str
    hardware: str
    data_source: str
    data_root: str
    data_origin: str
    image_size: int
    epochs: int
    batch_size: int
    max_images: int | None
    seed: int
    amp: str = "off"  # the mixed precision `fit` picks on this device with amp="auto": bf16, fp16 or off
    notebook: str = ""
    recipe: Recipe | None = None  # the notebook's resolved recipe: settings and arms, the parameters applied
    parameters: dict[str, Any] = field(default_factory=dict)  # other notebook parameters, recorded as given
    budget_minutes: float = 30.0  # a notebook estimated to take longer here is announced with a warning
    started: float = field(default_factory=time.time, compare=False, repr=False)  # for the metrics' wall time

    @property
    def settings(self) -> dict[str, Any]:
        """The recipe's settings (sizes, epochs, lists of sizes), empty without a recipe."""
        return dict(self.recipe.settings) if self.recipe else {}

    def arm(self, name: str, model: str | None = None, image_size: int | None = None, **settings: Any) -> Arm:
        """The recipe's arm called name (optionally with another architecture or input size), with any other setting
        changed by keyword: `config.arm('improved', imbalance='none')`, named "improved (imbalance='none')"."""
        if self.recipe is None:
            raise ValueError(f"{self.notebook or 'this notebook'} has no recipe, so no arm {name!r}")
        return self.recipe.arm(name, model, image_size, **settings)

    def banner(self, n_images: int | None = None) -> str:
        """The configuration as a few printable lines (see `banner`)."""
        return banner(self, n_images)

    def estimate(self, rows: Any = None) -> str:
        """The cost model's estimate of this notebook on this machine, per run, with a warning over the budget;
        rows: for notebook 06, the grid rows still to run (helpers.scaling.pending_rows), None for all of them.
        The synthetic demo (helpers.course.recipes.DEMO) is estimated from the committed 2-core CPU calibration instead:
        calibrating this machine would outlast the demo's trainings."""
        from .cost.series import REFERENCE_CPU, announce, target_for

        if self.recipe is not None and self.recipe.sizing == "demo":
            if not REFERENCE_CPU.is_file():
                return "no time estimate for the synthetic demo: the committed 2-core CPU calibration is missing"
            return announce(self, self.budget_minutes, rows, target=target_for("cpu"))
        return announce(self, self.budget_minutes, rows)

    @property
    def models_dir(self) -> Path:
        """Where this run's checkpoints go: $SKIN_LESION_MODELS_DIR, else the git-ignored models/."""
        return models_home()

    def to_dict(self) -> dict[str, Any]:
        """Plain-value dictionary, for JSON next to results and in checkpoints."""
        values = dataclasses.asdict(self)
        values.pop("started")
        return {**values, "split_version": SPLIT_VERSION}  # which list of linked lesions the splits grouped


def resolve_preset(preset: str = "auto") -> str:
    """The preset to use: $SKIN_LESION_PRESET overrides; 'auto' means gpu with CUDA, else cpu."""
    chosen = os.environ.get(PRESET_ENV) or preset
    if chosen == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if chosen not in PRESETS:
        raise ValueError(f"preset must be one of auto, {', '.join(PRESETS)}; got {chosen!r} "
                         f"({'from $' + PRESET_ENV if os.environ.get(PRESET_ENV) else 'from the preset parameter'})")
    return chosen


def resolve_config(
    preset: str = "auto",
    data_dir: str | None = None,
    image_size: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    max_images: int | None = None,
    seed: int = 0,
) -> Config:
    """Turn a notebook's parameters into one Config: explicit values win over the preset's (None: the preset's)."""
    for key, value in (("image_size", image_size), ("epochs", epochs), ("batch_size", batch_size),
                       ("max_images", max_images)):
        check_int(f"resolve_config: {key}", value, optional=True)
    check_int("resolve_config: seed", seed, minimum=0)
    name = resolve_preset(preset)
    defaults = PRESETS[name]
    source: DataSource = resolve_data_source(data_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return Config(
        preset=name,
        device=device,
        hardware=hardware_description(),
        data_source=source.kind,
        data_root=str(source.root),
        data_origin=source.origin,
        image_size=image_size or defaults["image_size"],
        epochs=epochs or defaults["epochs"],
        batch_size=batch_size or defaults["batch_size"],
        max_images=_max_images(max_images, defaults["max_images"], sizing_for(name, source.kind)),
        seed=seed,
        amp=describe_amp(device),
    )


def _max_images(asked: int | None, preset_default: int | None, sizing: Sizing | None = None) -> int | None:
    chosen = asked if asked is not None else preset_default
    if sizing is not None and sizing.max_images is not None:  # a check run or the synthetic demo (helpers.course.recipes)
        return min(chosen or sizing.max_images, sizing.max_images)
    return chosen


def setup(notebook: str, preset: str = "auto", data_dir: str | None = None, seed: int = 0, *, show: bool = True,
          record: Mapping[str, Any] | None = None, budget_minutes: float = 30.0, **parameters: Any) -> Config:
    """A notebook's one Config: its parameters (None: the recipe's) -> preset -> recipe; prints the banner and the
    estimated time on this machine (`Config.estimate`, a warning above budget_minutes) when show.

    parameters override the recipe's settings of the same name and so the arms built from them; record holds
    other parameters (paths, switches), saved as given. The config's image size, epochs and batch size are the
    recipe's where it sets them, else the preset's.
    """
    config = resolve_config(preset, data_dir=data_dir, seed=seed)
    if notebook in NOTEBOOKS:
        recipe = resolve_recipe(notebook, config.preset, seed=seed, data_source=config.data_source, **parameters)
    elif parameters:
        raise ValueError(f"{notebook} has no recipe, so no parameter {', '.join(sorted(parameters))}")
    else:
        recipe = None
    sizes = {key: recipe.settings[key] for key in ("image_size", "epochs", "batch_size")
             if recipe and key in recipe.settings}
    config = dataclasses.replace(config, **sizes, notebook=notebook, recipe=recipe, parameters=dict(record or {}),
                                 budget_minutes=check_number("setup: budget_minutes", budget_minutes, above_minimum=True))
    if show:
        print(config.banner())
        if recipe is not None:
            print(config.estimate())
    return config


def banner(config: Config, n_images: int | None = None) -> str:
    """The configuration as a few printable lines, with the data announced (loudly if synthetic)."""
    source = DataSource(config.data_source, Path(config.data_root), config.data_origin)
    lines = [
        describe(source, n_images),
        *([sizing.announce(config.preset)] if (sizing := sizing_for(config.preset, config.data_source)) else []),
        f"preset {config.preset} | device {config.device} ({config.hardware}) | amp {config.amp} | seed {config.seed}",
    ]
    arms = config.recipe.arms if config.recipe else {}
    if arms:  # each arm's own sizes: a notebook's arms train at different sizes and batches
        lines += [arm.describe() for arm in arms.values()]
        lines += [f"at most {config.max_images} images"] if config.max_images else []
    else:
        lines.append(f"image size {config.image_size}px | epochs {config.epochs} | batch {config.batch_size}"
                     + (f" | at most {config.max_images} images" if config.max_images else ""))
        lines += [f"{key} = {value!r}" for key, value in config.settings.items()
                  if key not in ("image_size", "epochs", "batch_size")]
    lines += [f"{key} = {value!r}" for key, value in config.parameters.items()]
    return "\n".join(lines)
