"""Estimates for the whole series or one notebook: the target device, the data at hand, the calibration it needs.

Targets: "this" (the machine at hand, calibrated on first use and cached per machine in
models_home()/calibration/), "cpu" (the 2-core CPU of the committed calibration, helpers/course/cost/cpu_2core.json),
and the GPU classes of helpers.course.cost.devices ("t4", "l4", "a100", "h100"). A GPU calibration file (from
`python -m helpers.budget --calibrate`, e.g. `make calibrate-gpu`) replaces the public figures of its GPU class.
$SKIN_LESION_CALIBRATION names a calibration file to use for "this" (the report runner sets it, so that every
notebook of a series estimates from the calibration the series recorded).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..recipes import NOTEBOOKS, Recipe, resolve_recipe
from .calibration import Calibration, calibrate, read_calibration, write_calibration
from .devices import GPUS
from .estimate import NotebookEstimate, Target, estimate_notebook
from .plan import DataSizes, NotebookPlan, plan_notebook

CALIBRATION_ENV = "SKIN_LESION_CALIBRATION"
SERIES_CALIBRATION = "calibration.json"  # beside a series' reports: the calibration its estimates came from
REFERENCE_CPU = Path(__file__).with_name("cpu_2core.json")  # the committed calibration of the course's 2-core CPU
SERIES = ("01_eda", "02_preprocessing", "03_custom_cnn", "04_resnet_transfer", "05_efficientnet_binary",
          "06_scaling_study", "07_external_test")
DEVICES = ("this", "cpu", *GPUS)


def notebook_plan(notebook: str, preset: str, sizes: DataSizes, pretrained: Callable[[str], bool],
                  recipe: Recipe | None = None, seed: int = 0) -> NotebookPlan:
    """The plan of notebook under preset (its recipe resolved unless given)."""
    if recipe is None and notebook in NOTEBOOKS:
        recipe = resolve_recipe(notebook, preset, seed=seed)
    return plan_notebook(recipe, notebook, preset, sizes, pretrained)


def work_of(plans: Iterable[NotebookPlan]) -> set[tuple[str, int, int, bool, str]]:
    """What a calibration must measure for these plans: (model, input size, batch, trains, optimizer)."""
    return {(run.model, run.image_size, run.batch_size if run.train_images or run.backward_images else
             run.eval_batch_size, bool(run.train_images or run.backward_images), run.optimizer)
            for plan in plans for run in plan.runs}


def machine_key(hardware: str) -> str:
    """A file name for this machine's calibration: its hardware line hashed."""
    return hashlib.sha256(hardware.encode()).hexdigest()[:12]


def calibration_here(plans: Iterable[NotebookPlan], hardware: str, progress: bool = True) -> Calibration:
    """This machine's calibration covering plans: $SKIN_LESION_CALIBRATION if set, else the cached one, with every
    missing entry measured now and the cache rewritten."""
    plans = list(plans)
    named = os.environ.get(CALIBRATION_ENV)
    if named:
        return read_calibration(named)
    from ...data.source import models_home

    path = models_home() / "calibration" / f"{machine_key(hardware)}.json"
    cached = _read_or_none(path)
    have = {(e.model, e.image_size, e.batch_size, e.train_s_per_image is not None) for e in cached.entries} if cached else set()
    missing = {w for w in work_of(plans) if (w[0], w[1], w[2], w[3]) not in have}
    if cached is not None and not missing:
        return cached
    if progress:
        print(f"calibrating this machine for the estimate ({len(missing)} model/size pair(s), a few seconds each) …",
              flush=True)
    fresh = calibrate(missing, hardware, progress=False)
    merged = fresh if cached is None else Calibration(**{**cached.__dict__, "entries": cached.entries + fresh.entries,
                                                          "created": fresh.created})
    write_calibration(merged, path)
    return merged


def _read_or_none(path: Path) -> Calibration | None:
    if not path.is_file():
        return None
    try:
        return read_calibration(path)
    except ValueError:
        return None


def gpu_calibration(key: str) -> Calibration | None:
    """A measured calibration of GPU class key (models_home()/calibration/gpu-<key>.json), or None."""
    from ...data.source import models_home

    return _read_or_none(models_home() / "calibration" / f"gpu-{key}.json")


def target_for(device: str, plans: Iterable[NotebookPlan] = (), hardware: str | None = None) -> Target:
    """The Target named device: 'this', 'cpu' or a GPU class key; ValueError naming the known ones."""
    if device == "this":
        from ...core.machine import hardware_description

        hardware = hardware or hardware_description()
        return Target(f"this machine ({hardware})", calibration=calibration_here(plans, hardware))
    reference = read_calibration(REFERENCE_CPU) if REFERENCE_CPU.is_file() else None
    if device == "cpu":
        if reference is None:
            raise ValueError(f"no calibration of the 2-core CPU at {REFERENCE_CPU.name}: run "
                             "`python -m helpers.budget --calibrate --reference` on it")
        return Target(f"2-core CPU ({reference.hardware})", calibration=reference)
    if device in GPUS:
        measured = gpu_calibration(device)
        if measured is not None:
            return Target(f"{GPUS[device].label}, calibrated", calibration=measured, gpu=None, host=reference)
        return Target(GPUS[device].label, gpu=GPUS[device], host=reference)
    raise ValueError(f"--device must be one of {', '.join(DEVICES)}; got {device!r}")


def pretrained_here() -> Callable[[str], bool]:
    """Whether a model's ImageNet weights can be had on this machine: found locally (downloads are not tried)."""
    from ...models import pretrained_available

    return pretrained_available


def every_pretrained(model: str) -> bool:
    """A user's machine with network access: every published weight can be downloaded."""
    return True


def plans_here(config: Any, notebooks: Iterable[str] = SERIES) -> list[NotebookPlan]:
    """Each notebook's plan under a resolved Config's preset, data and image cap (helpers.course.config.resolve_config),
    with the weights on this machine."""
    return [notebook_plan(notebook, config.preset, sizes_for(notebook, config.data_source, config.data_root,
                                                             config.max_images), pretrained_here())
            for notebook in notebooks]


def estimate_series(preset: str, device: str, here: Any = None,
                    notebooks: Iterable[str] = SERIES) -> dict[str, NotebookEstimate]:
    """Every notebook's estimate under preset on device: for the real data sets' sizes with every published weight,
    or, given a resolved Config as here, for its data and the weights on this machine."""
    if here is not None:
        plans = plans_here(here, notebooks)
    else:
        plans = [notebook_plan(notebook, preset, DataSizes(), every_pretrained) for notebook in notebooks]
    target = target_for(device, plans)
    return {plan.notebook: estimate_notebook(plan, target) for plan in plans}


# ---------------------------------------------------------------- what a notebook announces before it trains

PRESET_ORDER = ("full", "gpu", "cpu")  # largest first: the presets a learner would switch to, smoke aside


def sizes_for(notebook: str, data_source: str, data_root: str, max_images: int | None,
              melanoma_dir: str | None = None) -> DataSizes:
    """The data a notebook will read here: HAM10000 (or the synthetic set) capped at max_images, DermaMNIST where its
    split CSV is found, melanoma10k (or its stand-in) for notebook 05."""
    from ...data import load_ham10000
    from ...data.source import find_dermamnist_csv

    synthetic = data_source == "synthetic"
    cap = (lambda n: min(n, max_images)) if max_images else (lambda n: n)
    ham = cap(len(load_ham10000(data_root, progress=False)))
    dermamnist = (0, 0, 0)
    if notebook == "04_resnet_transfer" and not synthetic and find_dermamnist_csv(None) is not None:
        dermamnist = tuple(cap(n) for n in DataSizes().dermamnist)
    melanoma = (0, 0)
    if notebook == "05_efficientnet_binary":
        from ...data.melanoma import resolve_melanoma_source

        root = resolve_melanoma_source(melanoma_dir).root
        melanoma = tuple(sum(1 for p in (root / part).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
                         for part in ("train", "test"))
        melanoma = (cap(melanoma[0]), cap(melanoma[1])) if max_images else melanoma
    external = 0
    if notebook == "07_external_test":
        from ...data.source import find_isic2018_test

        folder = find_isic2018_test(None)
        external = cap(len(list((folder / "images").glob("*")))) if folder is not None else 0
    return DataSizes(ham=ham, dermamnist=dermamnist, melanoma_train=melanoma[0], melanoma_test=melanoma[1],
                     synthetic=synthetic, external=external)


def announce(config: Any, budget_minutes: float = 30.0, rows: Iterable[Any] | None = None,
             target: Target | None = None) -> str:
    """The lines a notebook prints before it trains: each run's and the notebook's estimated time on this machine and,
    over budget_minutes, a warning naming the largest preset that fits. rows: notebook 06's grid rows still to run;
    target: another machine's calibration instead of this one's (None: this machine, calibrated on first use)."""
    notebook = config.notebook
    sizes = sizes_for(notebook, config.data_source, config.data_root, config.max_images,
                      config.parameters.get("melanoma_dir"))
    if rows is not None:
        from .plan import plan_scaling_study

        pending = set(rows)
        plan = plan_scaling_study(config.recipe, sizes, pretrained_here(), done=lambda row: row not in pending)
    elif notebook == "07_external_test":  # the models whose checkpoints this run cannot use train first
        from ..external_test import missing_models
        from .plan import plan_external_test

        missing = missing_models(config.models_dir, config.to_dict())
        plan = plan_external_test(config.recipe, sizes, pretrained_here(), lambda name: name in missing)
    else:
        plan = notebook_plan(notebook, config.preset, sizes, pretrained_here(), recipe=config.recipe)
    where = (f"this machine ({config.hardware}, from its calibration)" if target is None
             else f"{target.name}, whose calibration stands in for this machine's")
    target = target or target_for("this", [plan], config.hardware)
    estimate = estimate_notebook(plan, target)
    what = f"the {len(plan.runs)} grid row(s) still to run" if rows is not None else "the notebook"
    lines = [f"estimated time on {where}: {span(estimate.minutes)} for {what}, "
             f"peak memory {estimate.peak_gib:.1f} GiB"]
    lines += [f"  {run.label}: {span((run.seconds[0] / 60, run.seconds[1] / 60))}" for run in _grouped(estimate)]
    lines += [f"  ({note})" for note in estimate.notes]
    if estimate.minutes[1] > budget_minutes and rows is None and target.calibration is not None and where.startswith("this"):
        lines.append(over_budget(notebook, config.preset, estimate, sizes, target, budget_minutes))
    return "\n".join(lines)


def _grouped(estimate: NotebookEstimate, at_most: int = 12) -> list:
    """The runs to print: all of them, or for a long grid the sum per arm (label before ' f=')."""
    from .estimate import RunEstimate

    if len(estimate.runs) <= at_most:
        return list(estimate.runs)
    arms: dict[str, list] = {}
    for run in estimate.runs:
        arms.setdefault(run.label.split(" f=")[0], []).append(run)
    return [RunEstimate(f"{arm} ({len(runs)} runs)", (sum(r.seconds[0] for r in runs), sum(r.seconds[1] for r in runs)),
                        sum(r.flops for r in runs), max(r.peak_bytes for r in runs)) for arm, runs in arms.items()]


def span(minutes: tuple[float, float]) -> str:
    """A (low, high) range of minutes for readers: "4.1–4.5 min", "37–50 min", or hours from two hours on."""
    low, high = minutes
    if high >= 120:
        return f"{low / 60:.1f}–{high / 60:.1f} h" if high < 600 else f"{low / 60:,.0f}–{high / 60:,.0f} h"
    return f"{low:.1f}–{high:.1f} min" if high < 10 else f"{low:.0f}–{high:.0f} min"


def over_budget(notebook: str, preset: str, estimate: NotebookEstimate, sizes: DataSizes, target: Target,
                budget_minutes: float) -> str:
    """A warning that the notebook exceeds the budget here, naming the largest smaller preset that fits, if any."""
    smaller = PRESET_ORDER[PRESET_ORDER.index(preset) + 1:] if preset in PRESET_ORDER else ()
    for other in smaller:
        plan = notebook_plan(notebook, other, sizes, pretrained_here())
        fitted = estimate_notebook(plan, target_for("this", [plan], None if target.calibration is None
                                                    else target.calibration.hardware))
        if fitted.minutes[1] <= budget_minutes:
            return (f"WARNING: this notebook would take up to {estimate.minutes[1]:.0f} min here, over the "
                    f"{budget_minutes:g}-minute budget; preset='{other}' takes {span(fitted.minutes)} here "
                    f"(or pass budget_minutes to setup to accept it)")
    return (f"WARNING: this notebook would take up to {estimate.minutes[1]:.0f} min here, over the {budget_minutes:g}-minute "
            f"budget, and no smaller preset fits it: preset='smoke' runs in seconds on tiny data (its numbers mean "
            f"nothing), or use a GPU (preset='gpu' on a free Colab T4 keeps each notebook within 30 minutes)")


# ---------------------------------------------------------------- the table for users (docs/estimates.md)

TABLE_PRESETS = ("cpu", "gpu", "full")
TABLE_DEVICES = ("cpu", "t4", "a100", "h100")
TABLE_BEGIN, TABLE_END = "<!-- estimates:begin (python -m helpers.budget --write-docs) -->", "<!-- estimates:end -->"


def estimates_table(presets: Iterable[str] = TABLE_PRESETS, devices: Iterable[str] = TABLE_DEVICES) -> str:
    """A markdown table: estimated minutes (low–high) and peak GiB per notebook, preset and device, with series totals."""
    devices = list(devices)
    header = "| preset | notebook | " + " | ".join(target_for(d).name for d in devices) + " |"
    lines = [header, "|" + "---|" * (2 + len(devices))]
    for preset in presets:
        columns = [estimate_series(preset, device) for device in devices]
        for notebook in SERIES:
            cells = [f"{span(c[notebook].minutes)}, {c[notebook].peak_gib:.1f} GiB" for c in columns]
            lines.append(f"| `{preset}` | {notebook} | " + " | ".join(cells) + " |")
        totals = [span(tuple(sum(e.minutes[i] for e in c.values()) for i in (0, 1))) for c in columns]
        lines.append(f"| `{preset}` | **series** | " + " | ".join(f"**{t}**" for t in totals) + " |")
    return "\n".join(lines)


def with_table(text: str, table: str) -> str:
    """text with the block between the table markers replaced by table; ValueError when the markers are missing."""
    if TABLE_BEGIN not in text or TABLE_END not in text:
        raise ValueError(f"the markers {TABLE_BEGIN} … {TABLE_END} are missing")
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    return f"{head}{TABLE_BEGIN}\n{table}\n{TABLE_END}{tail}"
