"""Time and memory of a notebook's plan on a device: a calibrated machine, or a GPU class of the public table.

On a calibrated machine (the CPU at hand, or any machine with a calibration file) a run costs its images times
the seconds per image measured for its model, input size and batch (`helpers.course.cost.calibration`). On a GPU class
(`helpers.course.cost.devices`) it costs FLOPs / sustained FLOP/s of its architecture family plus a per-step overhead:
training 3 x the forward FLOPs per image (the backward pass about twice the forward), forward passes 1 x, both
counted by FlopCounterMode (2 FLOPs per multiply-add, the convention of peak TFLOPS). Every notebook adds a fixed
overhead (kernel start, imports, plots), every run a small one (building the model, mapping the cache), every image
cache a decode per image and every metric summary its bootstrap. The low end of a range uses the fastest figure,
the high end the slowest; on a calibrated machine the range is +-15% around the measurement.

Peak memory of a training: weights, gradients, optimiser state and activations at its batch size
(`helpers.models.profile.training_memory`), plus the image caches where they are kept on the device.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from .calibration import Calibration, Entry
from .devices import GPU, family_of
from .plan import NotebookPlan, Run

NOTEBOOK_OVERHEAD_S = 12.0  # kernel start, imports, tables and plots: notebook 01 (no training) took 16 s in all
RUN_OVERHEAD_S = 1.0  # building a model and mapping its image cache
CALIBRATED_SPREAD = (0.85, 1.15)  # the range around a calibrated estimate


@dataclass(frozen=True)
class RunEstimate:
    """One run's seconds (low, high), training FLOPs and peak memory on a device."""

    label: str
    seconds: tuple[float, float]
    flops: float
    peak_bytes: int
    extrapolated: bool = False  # no calibration entry: scaled by FLOPs from the machine's other entries


@dataclass(frozen=True)
class NotebookEstimate:
    """A notebook's minutes (low, high), peak GiB, trainings and FLOPs on a device."""

    notebook: str
    preset: str
    device: str
    minutes: tuple[float, float]
    peak_gib: float
    trainings: int
    flops: float
    runs: tuple[RunEstimate, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def point_minutes(self) -> float:
        """The middle of the range: the estimate a measured time is compared with."""
        return sum(self.minutes) / 2

    def line(self) -> str:
        """One printable line: trainings, FLOPs, minutes and peak memory."""
        low, high = self.minutes
        return (f"{self.notebook}: {self.trainings} training(s), {self.flops / 1e15:.2f} PFLOP, "
                f"{_minutes(low)}–{_minutes(high)} min, peak {self.peak_gib:.1f} GiB on {self.device}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of `python -m helpers.budget --json`."""
        return {"minutes": [round(m, 1) for m in self.minutes], "peak_gib": round(self.peak_gib, 2),
                "trainings": self.trainings, "pflops": round(self.flops / 1e15, 4),
                **({"notes": list(self.notes)} if self.notes else {})}


def _minutes(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


@dataclass(frozen=True)
class Target:
    """Where the estimate is for: a calibration (measured seconds per image) or a GPU class, and its label."""

    name: str
    calibration: Calibration | None = None
    gpu: GPU | None = None
    host: Calibration | None = None  # the CPU side of a GPU machine (decoding, bootstraps); None: this calibration

    @property
    def memory_bytes(self) -> float | None:
        """The device memory of a GPU class (None on a CPU)."""
        return self.gpu.memory_gib * 2**30 if self.gpu else None

    @property
    def amp(self) -> str:
        """The mixed precision training uses there."""
        if self.gpu:
            return self.gpu.amp
        return self.calibration.amp if self.calibration else "off"


def flops_of(run: Run) -> float:
    """The run's FLOPs: 3 x forward per trained or back-propagated image, 1 x per image passed forward."""
    from ...models.profile import profile

    forward = profile(run.model, run.image_size).forward_flops
    return forward * (3 * (run.train_images + run.backward_images) + run.eval_images)


def run_seconds(run: Run, target: Target) -> tuple[tuple[float, float], bool]:
    """(low, high) seconds of one run on target, and whether a calibration had to be extrapolated."""
    host = target.host or target.calibration
    fixed = RUN_OVERHEAD_S + run.bootstraps * (host.bootstrap_s if host else 1.0)
    if target.gpu is not None:
        return _gpu_seconds(run, target.gpu, fixed), False
    calibration = target.calibration
    entry = calibration.entry(run.model, run.image_size, run.batch_size)
    extrapolated = entry is None or (run.train_images and entry.train_s_per_image is None)
    if extrapolated:
        entry = _extrapolated_entry(run, calibration)
    seconds = ((run.train_images + run.backward_images) * (entry.train_s_per_image or 3 * entry.eval_s_per_image)
               + run.eval_images * entry.eval_s_per_image + fixed)
    low, high = CALIBRATED_SPREAD
    return (seconds * low, seconds * high), bool(extrapolated)


def _gpu_seconds(run: Run, gpu: GPU, fixed: float) -> tuple[float, float]:
    from ...models.profile import profile

    forward = profile(run.model, run.image_size).forward_flops
    slow, fast = gpu.sustained[family_of(run.model)]
    work = forward * (3 * (run.train_images + run.backward_images) + run.eval_images)
    steps = run.steps + math.ceil(run.backward_images / 64) + math.ceil(run.eval_images / run.eval_batch_size)
    floor = steps * gpu.step_overhead_s
    return (work / fast + floor + fixed, work / slow + floor + fixed)


def _extrapolated_entry(run: Run, calibration: Calibration) -> Entry:
    """An entry for a model the calibration lacks: the median FLOP/s its family reached there (any family if none)."""
    from ...models.profile import profile

    def rates(entries: list[Entry], train: bool) -> list[float]:
        out = []
        for e in entries:
            seconds = e.train_s_per_image if train else e.eval_s_per_image
            if seconds:
                out.append(profile(e.model, e.image_size).forward_flops * (3 if train else 1) / seconds)
        return out

    family = [e for e in calibration.entries if family_of(e.model) == family_of(run.model)] or list(calibration.entries)
    forward = profile(run.model, run.image_size).forward_flops
    train_rate = statistics.median(rates(family, True) or rates(list(calibration.entries), True))
    eval_rate = statistics.median(rates(family, False))
    return Entry(run.model, run.image_size, run.batch_size, 3 * forward / train_rate, forward / eval_rate)


def run_peak_bytes(run: Run, target: Target, cache_bytes: int) -> int:
    """Peak memory of one run: the training (or forward passes) at its batch size, plus the image cache where it fits."""
    from ...models.profile import profile, training_memory

    model = profile(run.model, run.image_size)
    batch = run.batch_size if run.train_images or run.backward_images else run.eval_batch_size
    memory = training_memory(model, batch, target.amp, run.optimizer, cache_bytes=0)
    if not (run.train_images or run.backward_images):
        # forward passes keep no gradients, optimiser state or saved activations: a few layers' outputs at a time,
        # assumed an eighth of what training saves
        memory_total = memory.weights + model.activation_bytes * batch // 8
    else:
        memory_total = memory.total
    limit = target.memory_bytes
    with_cache = memory_total + cache_bytes
    # helpers.data.tensors keeps caches on the device only with room to spare, else in host memory
    return int(with_cache if limit is None or with_cache <= 0.5 * limit else memory_total)


def estimate_notebook(plan: NotebookPlan, target: Target) -> NotebookEstimate:
    """The plan's minutes (low, high), peak GiB, trainings and FLOPs on target."""
    from ...models.profile import image_cache_bytes

    host = target.host or target.calibration
    decode = host.decode_s_per_image if host else 0.002
    runs, extrapolated = [], False
    cache = {size: image_cache_bytes(images, size) for _, size, images in plan.loads}
    for run in plan.runs:
        seconds, guessed = run_seconds(run, target)
        extrapolated |= guessed
        runs.append(RunEstimate(run.label, seconds, flops_of(run), run_peak_bytes(run, target, cache.get(run.image_size, 0)),
                                guessed))
    loading = sum(images for _, _, images in plan.loads) * decode
    fixed = NOTEBOOK_OVERHEAD_S + loading
    low = (fixed + sum(r.seconds[0] for r in runs)) / 60
    high = (fixed + sum(r.seconds[1] for r in runs)) / 60
    peak = max((r.peak_bytes for r in runs), default=0) / 2**30
    notes = plan.notes + (("some models were not calibrated here: their time is scaled by FLOPs",) if extrapolated else ())
    return NotebookEstimate(plan.notebook, plan.preset, target.name, (low, high), peak, plan.trainings,
                            sum(r.flops for r in runs), tuple(runs), notes)
