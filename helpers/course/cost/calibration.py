"""A short calibration of the machine at hand: seconds per image for each model, input size and batch a plan trains.

Each entry is measured with the project's own loop (`fit` on random images: augmentation, channels_last, mixed
precision, EfficientNet's depthwise layers in fp32 on a bf16 CPU, the optimiser), so an estimate from it times
the code that will run, not a FLOP count: the first epoch warms up, the second is timed (its training steps and
its validation pass separately). Also measured: decoding and resizing one image into a cache, and one metric
summary with 1,000 bootstrap resamples. On a GPU the same code records `torch.cuda.max_memory_allocated` too.

A calibration is a JSON file (`write_calibration`); the cost model prefers it to the public device table.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...core.io import write_json

CALIBRATION_VERSION = 1
TIMED_STEPS = 3  # training steps timed per entry (after a warm-up epoch of the same length)
EVAL_IMAGES = 256  # images of the timed validation pass


@dataclass(frozen=True)
class Entry:
    """What one (model, input size, batch) costs here: seconds per trained image and per image passed forward."""

    model: str
    image_size: int
    batch_size: int
    train_s_per_image: float | None  # None: measured for forward passes only
    eval_s_per_image: float
    peak_bytes: int | None = None  # torch.cuda.max_memory_allocated of the timed training, on a GPU


@dataclass(frozen=True)
class Calibration:
    """One machine's measurements: its hardware line, the entries and the fixed costs."""

    hardware: str
    device: str
    amp: str
    threads: int
    created: str
    entries: tuple[Entry, ...]
    decode_s_per_image: float  # reading and resizing one 200x150 JPEG into a cache
    bootstrap_s: float  # one metric summary with 1,000 bootstrap resamples of 1,500 images
    seconds: float = 0.0  # how long the calibration took
    version: int = CALIBRATION_VERSION
    notes: tuple[str, ...] = field(default_factory=tuple)

    def entry(self, model: str, image_size: int, batch_size: int | None = None) -> Entry | None:
        """The entry for model at image_size (the nearest batch size), or None."""
        same = [e for e in self.entries if e.model == model and e.image_size == image_size]
        if not same:
            return None
        return min(same, key=lambda e: abs(e.batch_size - (batch_size or e.batch_size)))

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return asdict(self)


def calibration_from_dict(values: dict[str, Any]) -> Calibration:
    """A Calibration from its JSON form; ValueError naming what is missing."""
    try:
        entries = tuple(Entry(**entry) for entry in values["entries"])
        return Calibration(**{**values, "entries": entries, "notes": tuple(values.get("notes", ()))})
    except (KeyError, TypeError) as err:
        raise ValueError(f"not a calibration of helpers.course.cost ({err})") from None


def read_calibration(path: str | Path) -> Calibration:
    """The calibration stored at path; ValueError naming the file when it is not one."""
    path = Path(path)
    try:
        return calibration_from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


def write_calibration(calibration: Calibration, path: str | Path) -> Path:
    """Write a calibration as JSON, atomically; returns the path."""
    write_json(calibration.to_dict(), Path(path))
    return Path(path)


def measure_entry(model_name: str, image_size: int, batch_size: int, train: bool = True, optimizer: str = "adamw",
                  device: str | torch.device | None = None, steps: int = TIMED_STEPS) -> Entry:
    """Time `fit` on random images: one warm-up epoch of `steps` batches, then one timed epoch and its validation."""
    from ...training.augment import AugmentConfig
    from ...data.tensors import ImageData, default_device
    from ...models import build_classifier
    from ...training.loop import TrainConfig, fit

    device = torch.device(device) if device is not None else default_device()
    classes = [f"c{i}" for i in range(7)]
    generator = torch.Generator().manual_seed(0)
    n_train = batch_size * steps
    images = torch.randint(0, 256, (n_train + EVAL_IMAGES, image_size, image_size, 3), dtype=torch.uint8,
                           generator=generator)
    labels = torch.arange(len(images)) % len(classes)
    train_data = ImageData(images[:n_train].to(device), labels[:n_train].to(device), device)
    val_data = ImageData(images[n_train:].to(device), labels[n_train:].to(device), device)
    model = build_classifier(model_name, classes, image_size, pretrained=False).to(device)
    if not train:
        return Entry(model_name, image_size, batch_size, None, _time_eval(model, val_data))
    config = TrainConfig(epochs=2, batch_size=batch_size, optimizer=optimizer, lr=1e-4, schedule="constant",
                         augment=AugmentConfig(), max_steps_per_epoch=steps, restore_best=False, progress=False,
                         eval_batch_size=256)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    history = fit(model, train_data, val_data, config).history
    timed = history.iloc[-1]
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    eval_s = (timed["epoch_time_s"] - timed["train_time_s"]) / EVAL_IMAGES
    return Entry(model_name, image_size, batch_size, float(timed["train_time_s"] / timed["train_images"]),
                 float(eval_s), peak)


def _time_eval(model: torch.nn.Module, data: Any) -> float:
    from ...training.inference import evaluate

    evaluate(model, data)  # warm-up
    started = time.perf_counter()
    evaluate(model, data)
    return (time.perf_counter() - started) / len(data)


def measure_decode(n: int = 64) -> float:
    """Seconds to decode and resize one 200x150 JPEG (made here) to 128 px, as the image cache does."""
    import tempfile

    from PIL import Image

    from ...data.images import load_resized

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(n):
            path = Path(folder) / f"image_{i}.jpg"
            pixels = rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=75)
            paths.append(path)
        started = time.perf_counter()
        for path in paths:
            load_resized(path, 128)
        return (time.perf_counter() - started) / n


def measure_bootstrap(n_images: int = 1500, n_boot: int = 1000) -> float:
    """Seconds of one metric summary (7 classes) with n_boot lesion-bootstrap resamples of n_images."""
    from ...evaluation.metrics import metrics_summary

    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, n_images)
    probs = rng.dirichlet(np.ones(7), n_images)
    groups = np.arange(n_images) // 2
    started = time.perf_counter()
    metrics_summary(y, probs, [f"c{i}" for i in range(7)], groups, n_boot=n_boot, seed=0)
    return time.perf_counter() - started


def calibrate(work: Iterable[tuple[str, int, int, bool, str]], hardware: str, device: str | torch.device | None = None,
              steps: int = TIMED_STEPS, progress: bool = True) -> Calibration:
    """Measure every (model, input size, batch size, trains, optimizer) of work on this machine (named by hardware)."""
    from ...data.tensors import default_device
    from ...core.precision import describe_amp

    device = torch.device(device) if device is not None else default_device()
    started = time.perf_counter()
    entries = []
    todo = sorted(set(work))
    for number, (model, size, batch, trains, optimizer) in enumerate(todo, 1):
        entry = measure_entry(model, size, batch, trains, optimizer, device, steps)
        entries.append(entry)
        if progress:
            per = f"train {1 / entry.train_s_per_image:,.0f} img/s, " if entry.train_s_per_image else ""
            print(f"calibration {number}/{len(todo)}: {model} {size} px batch {batch}: {per}"
                  f"forward {1 / entry.eval_s_per_image:,.0f} img/s", flush=True)
    return Calibration(hardware, device.type, describe_amp(device.type), torch.get_num_threads(),
                       dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), tuple(entries),
                       measure_decode(), measure_bootstrap(), round(time.perf_counter() - started, 1))
