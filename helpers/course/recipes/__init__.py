"""Every notebook's recipes, one module each, per preset: the sizes and every arm (model + TrainConfig) by name.

    02_preprocessing        preprocessing.py        leakage
    03_custom_cnn           custom_cnn.py           reference, reference_no_dropout, improved
    04_resnet_transfer      resnet_transfer.py      scratch, plain_loss, probe, finetune, dermamnist_scratch,
                                                    dermamnist_finetune
    05_efficientnet_binary  efficientnet_binary.py  reference, ours, ham
    06_scaling_study        scaling_study.py        the grid settings and FIXED_RECIPE (rows, not named arms)
    07_external_test        external_test.py        no arms: it tests 03's, 04's and 05's models elsewhere

`cpu` is sized so the whole series runs in about an hour on a 2-core laptop-class CPU; `gpu` uses the full
settings of the reference notebooks; `smoke` runs each notebook in seconds on tiny data for tests. Settings named
`reference_*` are those of a reference notebook's own recipe. `resolve_recipe` applies a notebook's parameters
(overrides) and a sizing's caps, then builds the arms; `find_arm("03_custom_cnn:improved", "cpu")` is the
one-call lookup for a command line.

Two sizings run a preset's code path at a tiny size, its numbers meaning nothing (`Sizing`, `capped_settings`):
CHECK, a check run (`python -m helpers.reports --check`), and DEMO, any preset but smoke on the built-in synthetic
demo set (no real data configured), so that the demo shows in minutes that every cell works. Both keep the models,
input sizes, batch sizes and schedules, cap every epoch count and the images, and cut the scaling grid to one run
per distinct configuration at its largest training-set fractions.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...data.images import RESIZE_POLICIES
from ...core.validate import check_bool, check_choice, check_int, check_number
from . import custom_cnn, efficientnet_binary, external_test, preprocessing, resnet_transfer, scaling_study
from .arms import CHECK_EPOCHS, Arm, NotebookRecipes

CHECK_ENV = "SKIN_LESION_CHECK"  # set by `python -m helpers.reports --check`
CHECK_MAX_IMAGES = 64  # a check run's max_images: subsample_lesions keeps whole lesions and >= 15 images per class
CHECK_GRID_FRACTIONS = 1  # a check run's scaling grid: the whole training split only
DEMO_EPOCHS = 1  # the synthetic demo's cap on every epoch count (the smoke preset's: one epoch runs every cell)
DEMO_MAX_IMAGES = 210  # the synthetic demo's max_images (of the built-in 700), the smoke preset's: whole lesions,
# at least 15 images per class (subsample_lesions), on which every cell is known to run
DEMO_GRID_FRACTIONS = 3  # the demo's scaling grid: the 3 largest fractions, the fewest a power law can be fitted to
GRID_N_BOOT = 100  # bootstrap resamples per grid run in both sizings (1,000 in the presets)
NOTEBOOKS: dict[str, NotebookRecipes] = {module.NOTEBOOK: module.RECIPES for module in
                                         (preprocessing, custom_cnn, resnet_transfer, efficientnet_binary,
                                          scaling_study, external_test)}
# Each notebook's settings per preset, as plain dictionaries (what `recipe` starts from).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {name: {preset: dict(values) for preset, values in spec.settings.items()}
                                                 for name, spec in NOTEBOOKS.items()}

__all__ = ["Arm", "CHECK", "CHECK_ENV", "CHECK_EPOCHS", "CHECK_MAX_IMAGES", "DEMO", "DEMO_EPOCHS", "DEMO_MAX_IMAGES",
           "NOTEBOOKS", "RECIPES", "Recipe", "Sizing", "capped_settings", "check_mode",
           "check_override", "check_settings", "find_arm", "list_arms", "preset_models", "recipe", "resolve_recipe",
           "sizing_for"]


def check_mode() -> bool:
    """True inside a check run ($SKIN_LESION_CHECK=1): a preset's code path on a few dozen images, not a result."""
    return os.environ.get(CHECK_ENV, "") not in ("", "0")


@dataclass(frozen=True)
class Sizing:
    """A preset's code path at a tiny size, to show that it runs, not to measure: the caps on its recipe and data.

    epochs caps every epoch count of the settings and arms; max_images the images a notebook loads (None: all);
    grid_fractions keeps that many of the scaling grid's largest training-set fractions, one seed each, each
    run seeing its subset once per epoch (no repeats up to min_images), pretrained arms on the whole split only,
    with n_boot bootstrap resamples and no resuming.
    """

    name: str
    epochs: int
    max_images: int | None
    grid_fractions: int
    n_boot: int

    def announce(self, preset: str) -> str:
        """The banner's line(s) saying loudly what this sizing is and that its numbers mean nothing."""
        if self.name == "check":
            return (f"CHECK RUN of the {preset} preset: a tiny lesion-grouped subset (at least 15 images per class), "
                    f"at most {self.epochs} epochs per training; its numbers prove the code path only")
        images = f"at most {self.max_images} images" if self.max_images else "all its images"
        return (f"!! DEMO SIZING of the {preset} preset: this run is sized to show that every cell works, in minutes.\n"
                f"!! At most {self.epochs} epoch{'s' * (self.epochs != 1)} per training, {images}, the scaling grid one "
                f"run per configuration at\n"
                f"!! its {self.grid_fractions} largest sizes. ITS NUMBERS MEAN NOTHING: with real data the {preset} preset "
                f"trains in full.\n{'!' * 78}")


CHECK = Sizing("check", CHECK_EPOCHS, CHECK_MAX_IMAGES, CHECK_GRID_FRACTIONS, GRID_N_BOOT)
DEMO = Sizing("demo", DEMO_EPOCHS, DEMO_MAX_IMAGES, DEMO_GRID_FRACTIONS, GRID_N_BOOT)


def sizing_for(preset: str, data_source: str | None = None, check: bool | None = None) -> Sizing | None:
    """The sizing of a run: CHECK in a check run (check, None: check_mode()), DEMO for any preset but smoke on the
    built-in synthetic demo set (data_source "synthetic", helpers.data.source), else None (the preset as it is)."""
    if check_mode() if check is None else check:
        return CHECK
    if data_source == "synthetic" and preset != "smoke":
        return DEMO
    return None


@dataclass(frozen=True)
class Recipe:
    """A notebook's resolved recipe under one preset: its settings and its arms by name."""

    notebook: str
    preset: str
    seed: int
    settings: dict[str, Any]
    arms: dict[str, Arm] = field(default_factory=dict)
    sizing: str | None = None  # "check" or "demo" when capped (Sizing), None for the preset as it is

    def arm(self, name: str, model: str | None = None, image_size: int | None = None, **settings: Any) -> Arm:
        """The arm called name, optionally with another architecture (its fallback) or input size, and with any
        other setting changed by keyword (`Arm.with_settings`: the name then says what changed)."""
        if name not in self.arms:
            raise ValueError(f"{self.notebook} has no arm {name!r}; known: {', '.join(self.arms) or 'none'}")
        return self.arms[name].using(model, image_size).with_settings(**settings)

    def of_preset(self, preset: str) -> Recipe:
        """The same notebook's recipe under another preset, without overrides or a sizing's caps."""
        return resolve_recipe(self.notebook, preset, seed=self.seed, check=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON and checkpoints."""
        return dataclasses.asdict(self)


def _spec(notebook: str) -> NotebookRecipes:
    if notebook not in NOTEBOOKS:
        raise ValueError(f"no recipe for notebook {notebook!r}; known: {', '.join(NOTEBOOKS)}")
    return NOTEBOOKS[notebook]


def recipe(notebook: str, preset: str, **overrides: Any) -> dict[str, Any]:
    """The settings of notebook under preset, with non-None overrides (the notebook's parameters) applied.

    In a check run the settings are capped (check_settings).
    """
    settings = _overridden(notebook, preset, overrides)
    return check_settings(notebook, settings) if check_mode() else settings


def _overridden(notebook: str, preset: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    presets = _spec(notebook).settings
    if preset not in presets:
        raise ValueError(f"notebook {notebook} has no {preset!r} preset; known: {', '.join(presets)}")
    settings = dict(presets[preset])
    unknown = sorted(key for key in overrides if key not in settings)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for {notebook}; known: {', '.join(settings)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    for key, value in given.items():
        check_override(f"{notebook} parameter {key}", value, settings[key])
    settings.update(given)
    return settings


def resolve_recipe(notebook: str, preset: str, seed: int = 0, check: bool | None = None, data_source: str | None = None,
                   **overrides: Any) -> Recipe:
    """notebook's Recipe under preset: overrides applied to the settings, then the arms built from them with seed.

    The run's sizing (sizing_for: check, None meaning check_mode(), and data_source, the Config's) caps the
    settings and every arm's epochs; check=False without data_source gives the preset as it is.
    """
    sizing = sizing_for(preset, data_source, check)
    settings = _overridden(notebook, preset, overrides)
    settings = capped_settings(notebook, settings, sizing) if sizing else settings
    arms = _spec(notebook).build_arms(settings, seed)
    if sizing:
        arms = {name: arm.capped(sizing.epochs) for name, arm in arms.items()}
    return Recipe(notebook, preset, seed, settings, arms, sizing.name if sizing else None)


def find_arm(reference: str, preset: str = "cpu", seed: int = 0) -> Arm:
    """The arm named 'NOTEBOOK:NAME' (e.g. '03_custom_cnn:improved') under preset: the command line's lookup."""
    notebook, _, name = reference.partition(":")
    if not name:
        raise ValueError(f"an arm is named NOTEBOOK:NAME, e.g. 03_custom_cnn:improved; got {reference!r}")
    return resolve_recipe(notebook, preset, seed=seed).arm(name)


def list_arms(preset: str = "cpu") -> list[str]:
    """Every 'NOTEBOOK:NAME' find_arm knows under preset."""
    return [f"{notebook}:{name}" for notebook in NOTEBOOKS
            for name in resolve_recipe(notebook, preset, check=False).arms]


def check_override(name: str, value: Any, default: Any) -> None:
    """ValueError naming the parameter when an override does not fit the kind of the recipe's own value.

    Whole numbers stay whole and >= 1 (seeds >= 0), other numbers >= 0 (fractions in (0, 1]), switches
    True or False, lists non-empty lists of such values, a resize policy one of the known ones.
    """
    key = name.rsplit(" ", 1)[-1]
    if key.endswith("policy"):
        check_choice(name, value, RESIZE_POLICIES)
    elif isinstance(default, bool):
        check_bool(name, value)
    elif isinstance(default, int):
        check_int(name, value, minimum=0 if key in ("seed", "seeds") or key.endswith("_seed") else 1)
    elif isinstance(default, float):
        check_number(name, value, above_minimum="fraction" in key, maximum=1.0 if "fraction" in key else None)
    elif isinstance(default, str) and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a non-empty string; got {value!r}")
    elif isinstance(default, list):
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be a non-empty list; got {value!r}")
        for item in value if default else ():
            check_override(name, item, default[0])


def preset_models(preset: str) -> list[tuple[str, int]]:
    """Every (model, input size) the notebooks train under preset, read from the arms (their offline fallbacks
    and every size they train at included) and, for notebook 06, from its grid."""
    pairs: set[tuple[str, int]] = set()
    for notebook in NOTEBOOKS:
        for arm in resolve_recipe(notebook, preset, check=False).arms.values():
            for model in (arm.model, *([arm.fallback] if arm.fallback else [])):
                pairs |= {(model, size) for size in (arm.image_size, *arm.sizes)}
    grid = RECIPES["06_scaling_study"][preset]
    for model in grid["models"] + grid["pretrained_models"]:
        pairs.add((model, int(grid.get("image_sizes", {}).get(model, grid["image_size"]))))
    return sorted(pairs)


def check_settings(notebook: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A check run's settings: the same models, input sizes, batch sizes and schedules, at most CHECK_EPOCHS epochs,
    and for the scaling grid one run of each distinct configuration (model, input size, pretrained or not)."""
    return capped_settings(notebook, settings, CHECK)


def capped_settings(notebook: str, settings: dict[str, Any], sizing: Sizing) -> dict[str, Any]:
    """settings under sizing: the same models, input sizes, batch sizes and schedules, at most sizing.epochs epochs,
    and for the scaling grid one run of each distinct configuration (model, input size, pretrained or not) at each
    of its sizing.grid_fractions largest training-set fractions (pretrained arms at the whole training split)."""
    capped = {key: min(value, sizing.epochs) if key.endswith("epochs") and isinstance(value, int) else value
              for key, value in settings.items()}
    if notebook == "06_scaling_study":
        capped.update(fractions=sorted(settings["fractions"])[-sizing.grid_fractions:], seeds=settings["seeds"][:1],
                      seeds_up_to=0.0, pretrained_fractions=[1.0], min_images=0, n_boot=sizing.n_boot, resume=False)
    return capped
