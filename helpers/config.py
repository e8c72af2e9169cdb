"""Presets and the one resolved configuration every notebook prints and saves beside its results."""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data.source import DataSource, describe, resolve_data_source
from .precision import describe_amp
from .validate import check_int

PRESET_ENV = "SKIN_LESION_PRESET"
CHECK_ENV = "SKIN_LESION_CHECK"  # set by `python -m helpers.reports --check`
CHECK_MAX_IMAGES = 64  # a check run's max_images: subsample_lesions keeps whole lesions and >= 15 images per class

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"image_size": 32, "epochs": 1, "batch_size": 32, "max_images": 210},
    "cpu": {"image_size": 64, "epochs": 8, "batch_size": 64, "max_images": None},
    "gpu": {"image_size": 128, "epochs": 25, "batch_size": 128, "max_images": None},
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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-value dictionary, for JSON next to results."""
        return dataclasses.asdict(self)


def resolve_preset(preset: str = "auto") -> str:
    """The preset to use: $SKIN_LESION_PRESET overrides; 'auto' means gpu with CUDA, else cpu."""
    chosen = os.environ.get(PRESET_ENV) or preset
    if chosen == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if chosen not in PRESETS:
        raise ValueError(f"preset must be one of auto, {', '.join(PRESETS)}; got {chosen!r} "
                         f"({'from $' + PRESET_ENV if os.environ.get(PRESET_ENV) else 'from the preset parameter'})")
    return chosen


def check_mode() -> bool:
    """True inside a check run ($SKIN_LESION_CHECK=1): a preset's code path on a few dozen images, not a result."""
    return os.environ.get(CHECK_ENV, "") not in ("", "0")


def hardware_description() -> str:
    """One line naming the GPU, or the CPU model and core count."""
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    return f"CPU {_cpu_model()} ({os.cpu_count()} cores)"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def resolve_config(
    preset: str = "auto",
    data_dir: str | None = None,
    image_size: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    max_images: int | None = None,
    seed: int = 0,
    **extra: Any,
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
        max_images=_max_images(max_images, defaults["max_images"]),
        seed=seed,
        amp=describe_amp(device),
        extra=extra,
    )


def _max_images(asked: int | None, preset_default: int | None) -> int | None:
    chosen = asked if asked is not None else preset_default
    if check_mode():
        return min(chosen or CHECK_MAX_IMAGES, CHECK_MAX_IMAGES)
    return chosen


def with_recipe(config: Config, settings: Mapping[str, Any]) -> Config:
    """config with a notebook's recipe applied: its image size, epochs and batch size win, the rest go to extra."""
    sizes = {key: settings[key] for key in ("image_size", "epochs", "batch_size") if key in settings}
    rest = {key: value for key, value in settings.items() if key not in sizes}
    return dataclasses.replace(config, **sizes, extra={**config.extra, **rest})


def banner(config: Config, n_images: int | None = None) -> str:
    """The configuration as a few printable lines, with the data announced (loudly if synthetic)."""
    source = DataSource(config.data_source, Path(config.data_root), config.data_origin)
    lines = [
        describe(source, n_images),
        *([f"CHECK RUN of the {config.preset} preset: a tiny lesion-grouped subset (at least 15 images per class), "
           "at most 2 epochs per training; its numbers prove the code path only"] if check_mode() else []),
        f"preset {config.preset} | device {config.device} ({config.hardware}) | amp {config.amp} | seed {config.seed}",
        f"image size {config.image_size}px | epochs {config.epochs} | batch {config.batch_size}"
        + (f" | at most {config.max_images} images" if config.max_images else ""),
    ]
    lines += [f"{key} = {value!r}" for key, value in config.extra.items()]
    return "\n".join(lines)
