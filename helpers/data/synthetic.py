"""Deterministic synthetic data set in the HAM10000 layout, the embedded demo data of the course.

The set mimics the real one closely enough to exercise every notebook: the same metadata columns,
HAM-like class imbalance, several images for some lesions, and dermoscopy-like images whose
colour, shape, border and texture depend on the diagnosis, so that a small CNN can learn the task
to well above chance without it being trivial. Image and lesion ids (``SYN_0000000``,
``SYNL_000000``) can never be confused with real ISIC/HAM ids.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from ..core.errors import DataError
from .ham10000 import METADATA_NAME as METADATA_FILE
from .labels import DX_CLASSES

__all__ = [
    "HAM_CLASS_COUNTS",
    "METADATA_COLUMNS",
    "MIN_IMAGES",
    "SYNTHETIC_VERSION",
    "make_synthetic",
    "render_image",
    "synthetic_metadata",
]

SYNTHETIC_VERSION = 1
MIN_IMAGES = 70
METADATA_COLUMNS: tuple[str, ...] = (
    "lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset",
)
IMAGES_DIR = "images"
MANIFEST_FILE = "synthetic.json"
DATASET_NAME = "synthetic"
JPEG_QUALITY = 90

HAM_CLASS_COUNTS: dict[str, int] = {
    "akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705, "vasc": 142,
}

_Params = dict[str, Any]
_Painted = tuple[np.ndarray, np.ndarray]

_STREAM_METADATA, _STREAM_LESION, _STREAM_IMAGE = 0, 1, 2
_MAX_IMAGES_PER_LESION = 6
_RARE_CLASS_FLOOR = 14

# Ratio of successive probabilities of 1, 2, 3... images per lesion; gives HAM's images/lesion
# (about 1.24 for nv, 1.8 for mel, 1.5 for the others).
_LESION_SIZE_DECAY = {
    "akiec": 0.33, "bcc": 0.36, "bkl": 0.34, "df": 0.36, "mel": 0.45, "nv": 0.2, "vasc": 0.32,
}

_DX_TYPE_P = {
    "akiec": {"histo": 1.0},
    "bcc": {"histo": 1.0},
    "bkl": {"histo": 0.5, "consensus": 0.4, "confocal": 0.1},
    "df": {"histo": 0.45, "consensus": 0.55},
    "mel": {"histo": 1.0},
    "nv": {"follow_up": 0.55, "histo": 0.35, "consensus": 0.1},
    "vasc": {"histo": 0.6, "consensus": 0.4},
}
_AGE_MEAN_SD = {
    "akiec": (67, 11), "bcc": (66, 12), "bkl": (63, 13), "df": (52, 14),
    "mel": (61, 15), "nv": (45, 16), "vasc": (48, 22),
}
_MALE_P = {"akiec": 0.66, "bcc": 0.62, "bkl": 0.55, "df": 0.5, "mel": 0.6, "nv": 0.5, "vasc": 0.45}
_LOCALIZATION_P = {
    "akiec": {"face": 45, "upper extremity": 12, "lower extremity": 9, "scalp": 8, "hand": 7,
              "back": 6, "ear": 3, "neck": 3, "chest": 3, "trunk": 2, "unknown": 2},
    "bcc": {"back": 30, "face": 20, "lower extremity": 10, "upper extremity": 10, "chest": 10,
            "abdomen": 5, "neck": 4, "scalp": 4, "trunk": 3, "ear": 2, "unknown": 2},
    "bkl": {"face": 30, "back": 15, "lower extremity": 10, "upper extremity": 10, "chest": 10,
            "trunk": 6, "unknown": 5, "abdomen": 4, "neck": 4, "scalp": 3, "ear": 1, "hand": 1, "foot": 1},
    "df": {"lower extremity": 70, "upper extremity": 20, "trunk": 3, "back": 3, "abdomen": 2, "unknown": 2},
    "mel": {"back": 20, "lower extremity": 20, "upper extremity": 15, "face": 15, "chest": 8,
            "trunk": 5, "abdomen": 5, "unknown": 5, "neck": 2, "scalp": 2, "foot": 2, "ear": 1},
    "nv": {"back": 28, "lower extremity": 22, "trunk": 14, "abdomen": 12, "upper extremity": 10,
           "chest": 4, "foot": 3, "unknown": 3, "face": 2, "neck": 1, "acral": 0.5, "genital": 0.5},
    "vasc": {"trunk": 20, "lower extremity": 20, "face": 15, "abdomen": 10, "back": 10,
             "upper extremity": 10, "chest": 5, "hand": 4, "acral": 3, "genital": 3},
}

_SKIN_LIGHT = np.array([0.96, 0.80, 0.73], np.float32)
_SKIN_DARK = np.array([0.76, 0.53, 0.42], np.float32)
_TAN = np.array([0.80, 0.60, 0.45], np.float32)
_LIGHT_BROWN = np.array([0.68, 0.46, 0.32], np.float32)
_BROWN = np.array([0.52, 0.32, 0.21], np.float32)
_DARK_BROWN = np.array([0.34, 0.19, 0.13], np.float32)
_BLACK = np.array([0.15, 0.10, 0.09], np.float32)
_BLUE_GREY = np.array([0.44, 0.46, 0.54], np.float32)
_VEIL = np.array([0.62, 0.66, 0.74], np.float32)
_PEARL = np.array([0.95, 0.80, 0.80], np.float32)
_PINK = np.array([0.92, 0.60, 0.62], np.float32)
_RED = np.array([0.78, 0.28, 0.28], np.float32)
_BROWN_RED = np.array([0.64, 0.30, 0.27], np.float32)
_VESSEL = np.array([0.68, 0.10, 0.14], np.float32)
_DARK_RED = np.array([0.52, 0.08, 0.14], np.float32)
_PURPLE = np.array([0.42, 0.14, 0.36], np.float32)
_BLUE_PURPLE = np.array([0.30, 0.16, 0.40], np.float32)
_SCALE = np.array([0.95, 0.91, 0.83], np.float32)
_WHITE_SCAR = np.array([0.93, 0.89, 0.86], np.float32)
_HAIR = np.array([0.16, 0.11, 0.08], np.float32)

_RADIUS_RANGE = {
    "akiec": (0.45, 0.9), "bcc": (0.4, 0.8), "bkl": (0.4, 0.85), "df": (0.28, 0.5),
    "mel": (0.5, 0.9), "nv": (0.32, 0.75), "vasc": (0.3, 0.6),
}

_FIELD_EXTENT = 2.0
_FIELD_CELLS = 64
_NOISE_MARGIN = 64
_THREADS_MIN_PIXELS = 100_000


def synthetic_metadata(n_images: int, seed: int) -> pd.DataFrame:
    """Return the metadata table of the synthetic set (HAM10000 columns, one row per image)."""
    n_images = _check_n_images(n_images)
    seed = _check_seed(seed)
    rng = _rng(seed, _STREAM_METADATA)
    lesions = [
        (dx, size)
        for dx, count in _class_counts(n_images).items()
        for size in _lesion_sizes(count, _LESION_SIZE_DECAY[dx], rng)
    ]
    lesion_order = rng.permutation(len(lesions))
    image_numbers = iter(rng.permutation(n_images))
    rows = []
    for lesion_number, index in enumerate(lesion_order):
        dx, size = lesions[index]
        patient = _patient(dx, rng)
        for image_number in sorted(next(image_numbers) for _ in range(size)):
            rows.append({
                "lesion_id": f"SYNL_{lesion_number:06d}",
                "image_id": f"SYN_{image_number:07d}",
                "dx": dx,
                **patient,
                "dataset": DATASET_NAME,
            })
    return pd.DataFrame(rows, columns=list(METADATA_COLUMNS))


def make_synthetic(
    out_dir: str | Path,
    n_images: int = 700,
    image_size: tuple[int, int] = (200, 150),
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write a synthetic HAM10000-layout data set (metadata CSV + JPEG images) into out_dir and return it."""
    out_dir = Path(out_dir)
    n_images = _check_n_images(n_images)
    width, height = _check_image_size(image_size)
    seed = _check_seed(seed)
    manifest = {
        "generator": __name__,
        "version": SYNTHETIC_VERSION,
        "n_images": n_images,
        "image_size": [width, height],
        "seed": seed,
    }
    if _is_complete(out_dir, manifest):
        return out_dir
    _check_replaceable(out_dir)
    target = out_dir.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        _write_set(tmp_dir, manifest, progress)
        _move_into_place(tmp_dir, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return out_dir


def _check_n_images(n_images: Any) -> int:
    if isinstance(n_images, bool) or not isinstance(n_images, (int, np.integer)):
        raise DataError(f"n_images must be an int, got {n_images!r}")
    if n_images < MIN_IMAGES:
        raise DataError(
            f"n_images must be at least {MIN_IMAGES} so that every one of the {len(DX_CLASSES)} "
            f"classes has a few lesions, got {n_images}"
        )
    return int(n_images)


def _check_image_size(image_size: Any) -> tuple[int, int]:
    message = f"image_size must be two positive ints (width, height), got {image_size!r}"
    if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
        raise DataError(message)
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in image_size):
        raise DataError(message)
    return int(image_size[0]), int(image_size[1])


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *key]))


def _class_counts(n_images: int) -> dict[str, int]:
    total = sum(HAM_CLASS_COUNTS.values())
    exact = {dx: n_images * HAM_CLASS_COUNTS[dx] / total for dx in DX_CLASSES}
    counts = {dx: int(v) for dx, v in exact.items()}
    by_remainder = sorted(DX_CLASSES, key=lambda dx: exact[dx] - counts[dx], reverse=True)
    for dx in by_remainder[: n_images - sum(counts.values())]:
        counts[dx] += 1
    # A floor for the rare classes (df, vasc) keeps a few lesions of each in every split of a small set.
    floor = min(_RARE_CLASS_FLOOR, max(4, round(0.02 * n_images)))
    majority = max(counts, key=counts.get)
    for dx in DX_CLASSES:
        if counts[dx] < floor:
            counts[majority] -= floor - counts[dx]
            counts[dx] = floor
    return counts


def _lesion_sizes(count: int, decay: float, rng: np.random.Generator) -> list[int]:
    # The cap keeps at least three lesions per class, so lesion-disjoint splits can hold every class.
    cap = max(1, min(_MAX_IMAGES_PER_LESION, count // 3))
    p = decay ** np.arange(cap)
    p /= p.sum()
    sizes = []
    while count > 0:
        size = min(int(rng.choice(cap, p=p)) + 1, count)
        sizes.append(size)
        count -= size
    return sizes


def _patient(dx: str, rng: np.random.Generator) -> dict[str, Any]:
    dx_types = _DX_TYPE_P[dx]
    dx_type = str(rng.choice(list(dx_types), p=list(dx_types.values())))
    sex_unknown = rng.random() < 0.006
    sex = "unknown" if sex_unknown else ("male" if rng.random() < _MALE_P[dx] else "female")
    mean, sd = _AGE_MEAN_SD[dx]
    age = float(np.clip(5 * np.round(rng.normal(mean, sd) / 5), 0, 85))
    if rng.random() < (0.5 if sex_unknown else 0.004):
        age = float("nan")
    places = _LOCALIZATION_P[dx]
    weights = np.array(list(places.values()), float)
    localization = str(rng.choice(list(places), p=weights / weights.sum()))
    return {"dx_type": dx_type, "age": age, "sex": sex, "localization": localization}


def _is_complete(out_dir: Path, manifest: dict[str, Any]) -> bool:
    try:
        recorded = json.loads((out_dir / MANIFEST_FILE).read_text())
        n_files = sum(1 for _ in os.scandir(out_dir / IMAGES_DIR))
    except (OSError, ValueError):
        return False
    return recorded == manifest and n_files == manifest["n_images"] and (out_dir / METADATA_FILE).is_file()


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"out_dir {str(out_dir)!r} exists and is not a directory")
    if any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
        raise DataError(
            f"out_dir {str(out_dir)!r} is not empty and holds no {MANIFEST_FILE}; refusing to replace "
            "what may be real data"
        )


def _write_set(root: Path, manifest: dict[str, Any], progress: bool) -> None:
    images_dir = root / IMAGES_DIR
    images_dir.mkdir(parents=True)
    seed, size = manifest["seed"], tuple(manifest["image_size"])
    metadata = synthetic_metadata(manifest["n_images"], seed)
    metadata.to_csv(root / METADATA_FILE, index=False, lineterminator="\n")
    jobs = [
        (images_dir / f"{image_id}.jpg", dx, int(lesion_id[5:]), int(image_id[4:]))
        for lesion_id, image_id, dx in metadata[["lesion_id", "image_id", "dx"]].itertuples(index=False)
    ]

    def write(job: tuple[Path, str, int, int]) -> None:
        path, dx, lesion_number, image_number = job
        render_image(dx, lesion_number, image_number, size, seed).save(path, "JPEG", quality=JPEG_QUALITY)

    # Threads pay off only on large images: on small ones numpy's many GIL hand-offs cost more than they gain.
    parallel = size[0] * size[1] >= _THREADS_MIN_PIXELS
    pool = ThreadPoolExecutor(min(4, os.cpu_count() or 1) if parallel else 1)
    try:
        with tqdm(total=len(jobs), desc="synthetic HAM10000", unit="img", disable=not progress) as bar:
            for _ in pool.map(write, jobs):
                bar.update()
    finally:
        pool.shutdown(cancel_futures=True)
    (root / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _move_into_place(tmp_dir: Path, out_dir: Path) -> None:
    old_dir = None
    if out_dir.exists():
        old_dir = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:12]}")
        out_dir.rename(old_dir)
    try:
        tmp_dir.rename(out_dir)
    except OSError:
        if old_dir is not None:
            old_dir.rename(out_dir)
        raise
    if old_dir is not None:
        shutil.rmtree(old_dir, ignore_errors=True)


def render_image(
    dx: str, lesion_number: int, image_number: int, size: tuple[int, int], seed: int
) -> Image.Image:
    """Draw one synthetic dermoscopy image of a lesion as an RGB PIL image of the given (width, height)."""
    if dx not in DX_CLASSES:
        raise DataError(f"dx must be one of {', '.join(DX_CLASSES)}, got {dx!r}")
    width, height = _check_image_size(size)
    seed = _check_seed(seed)
    lesion = _lesion_params(dx, _rng(seed, _STREAM_LESION, lesion_number))
    view = _view_params(lesion, _rng(seed, _STREAM_IMAGE, image_number))
    grid = _pixel_grid(width, height)
    u, v = _to_lesion_coords(grid, view)
    colour, alpha = _LESION_PAINTERS[dx](lesion, u, v, _Sampler(u, v))
    skin = _skin(lesion, view, width, height)
    image = np.subtract(colour, skin, dtype=np.float32)
    image *= alpha[..., None]
    image += skin
    image *= _vignette(grid, view)[..., None]
    image += _noise(grid, view)
    pil = Image.fromarray(_to_uint8(image))
    _draw_overlays(pil, lesion, view, grid)
    pil = pil.point(_tone_curve(view))
    if view["blur"]:
        pil = pil.filter(ImageFilter.GaussianBlur(view["blur"] * grid.unit / 75))
    return pil


class _Grid(NamedTuple):
    width: int
    height: int
    unit: float
    px: np.ndarray
    py: np.ndarray
    corner_distance: np.ndarray


@lru_cache(maxsize=8)
def _pixel_grid(width: int, height: int) -> _Grid:
    """Pixel centres in units of half the shorter side, origin at the image centre."""
    unit = min(width, height) / 2
    px = (np.arange(width, dtype=np.float32) + 0.5 - width / 2) / unit
    py = (np.arange(height, dtype=np.float32) + 0.5 - height / 2) / unit
    px, py = np.meshgrid(px, py)
    corner_distance = np.hypot(px, py) * np.float32(unit / float(np.hypot(width / 2, height / 2)))
    for array in (px, py, corner_distance):
        array.flags.writeable = False
    return _Grid(width, height, unit, px, py, corner_distance)


def _to_lesion_coords(grid: _Grid, view: _Params) -> tuple[np.ndarray, np.ndarray]:
    cos, sin = np.cos(view["angle"]), np.sin(view["angle"])
    x = (grid.px - np.float32(view["cx"])) * np.float32(1 / view["radius"])
    y = (grid.py - np.float32(view["cy"])) * np.float32(1 / view["radius"])
    return np.float32(cos) * x + np.float32(sin) * y, np.float32(cos) * y - np.float32(sin) * x


def _to_pixels(points: np.ndarray, view: _Params, grid: _Grid) -> list[tuple[float, float]]:
    cos, sin = np.cos(view["angle"]), np.sin(view["angle"])
    x = (cos * points[:, 0] - sin * points[:, 1]) * view["radius"] + view["cx"]
    y = (sin * points[:, 0] + cos * points[:, 1]) * view["radius"] + view["cy"]
    return list(zip((x * grid.unit + grid.width / 2).tolist(), (y * grid.unit + grid.height / 2).tolist()))


class _Sampler:
    """Smooth interpolation at fixed points (u, v) of square grids spanning [-extent, extent]^2."""

    def __init__(
        self, u: np.ndarray, v: np.ndarray, cells: int = _FIELD_CELLS, extent: float = _FIELD_EXTENT
    ) -> None:
        x = np.clip((u + extent) * (cells / (2 * extent)), 0, cells - 1e-3)
        y = np.clip((v + extent) * (cells / (2 * extent)), 0, cells - 1e-3)
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = _smoothstep(x - x0), _smoothstep(y - y0)
        corner = y0.astype(np.intp) * (cells + 1) + x0.astype(np.intp)
        self.indices = (corner, corner + 1, corner + cells + 1, corner + cells + 2)
        self.weights = ((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy)

    def __call__(self, field: np.ndarray) -> np.ndarray:
        flat = field.ravel()
        (i00, i10, i01, i11), (w00, w10, w01, w11) = self.indices, self.weights
        return flat.take(i00) * w00 + flat.take(i10) * w10 + flat.take(i01) * w01 + flat.take(i11) * w11


def _field(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth random field with about `cells` features across [-extent, extent], on the common grid."""
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    if cells == _FIELD_CELLS:
        return coarse
    return _resize(coarse, _FIELD_CELLS + 1, _FIELD_CELLS + 1)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (a + t * (b - a)).astype(np.float32)


def _shape_params(
    rng: np.random.Generator, lobes: float, ragged: float, edge: tuple[float, float]
) -> _Params:
    k = np.arange(2, 7)
    amplitude = rng.uniform(0, lobes, k.size) / np.sqrt(k - 1)
    phase = rng.uniform(0, 2 * np.pi, k.size)
    return {
        "harmonics": (amplitude * np.exp(1j * phase)).astype(np.complex64),
        "ragged": ragged,
        "ragged_field": _field(rng, 32),
        "edge": rng.uniform(*edge),
    }


def _lesion_params(dx: str, rng: np.random.Generator) -> _Params:
    params = {
        "radius": rng.uniform(*_RADIUS_RANGE[dx]),
        "cx": float(np.clip(rng.normal(0, 0.12), -0.3, 0.3)),
        "cy": float(np.clip(rng.normal(0, 0.1), -0.25, 0.25)),
        "angle": rng.uniform(0, 2 * np.pi),
        "skin_tone": rng.beta(2, 3),
        "redness": rng.uniform(0, 0.08),
        "low_field": _field(rng, 6),
        "mid_field": _field(rng, 14),
        "high_field": _field(rng, 32),
        "vessels": [],
        "dots": [],
    }
    params.update(_CLASS_PARAMS[dx](rng))
    return params


def _nv_params(rng: np.random.Generator) -> _Params:
    return {
        **_shape_params(rng, lobes=0.08, ragged=0.02, edge=(0.08, 0.2)),
        "base": _mix(_LIGHT_BROWN, _DARK_BROWN, rng.beta(2, 2.5)),
        "centre_dark": rng.uniform(0.0, 0.25),
        "network": rng.uniform(0.0, 0.25),
        "opacity": rng.uniform(0.8, 0.95),
    }


def _mel_params(rng: np.random.Generator) -> _Params:
    palette = [_LIGHT_BROWN, _BROWN, _DARK_BROWN, _BLACK, _BLUE_GREY, _BROWN_RED]
    p = [0.2, 0.25, 0.25, 0.15, 0.1, 0.05]
    chosen = rng.choice(len(palette), size=rng.integers(3, 5), replace=False, p=p)
    direction = rng.uniform(0, 2 * np.pi)
    n_dots = int(rng.integers(0, 14))
    angles = rng.uniform(0, 2 * np.pi, n_dots)
    dots = rng.uniform(0.55, 1.05, n_dots)[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)
    return {
        **_shape_params(rng, lobes=0.3, ragged=rng.uniform(0.06, 0.16), edge=(0.04, 0.12)),
        "colours": np.stack([palette[i] for i in chosen]),
        "colour_fields": [_field(rng, 8) for _ in chosen],
        "colour_bias": rng.normal(0, 1.2, len(chosen)).astype(np.float32),
        "direction": (float(np.cos(direction)), float(np.sin(direction))),
        "veil": rng.uniform(0.3, 0.6) if rng.random() < 0.35 else 0.0,
        "network": rng.uniform(0.1, 0.4),
        "opacity": rng.uniform(0.85, 0.97),
        "dots": [(dots, rng.uniform(0.025, 0.06, n_dots), _BLACK, 0.85)],
    }


def _bkl_params(rng: np.random.Generator) -> _Params:
    n_milia, n_comedo = int(rng.integers(2, 12)), int(rng.integers(0, 8))
    return {
        **_shape_params(rng, lobes=0.14, ragged=0.03, edge=(0.03, 0.07)),
        "base": _mix(_TAN, _BROWN, rng.beta(1.6, 2.5)),
        "mottle": rng.uniform(0.07, 0.18),
        "fissures": rng.uniform(0.1, 0.3) if rng.random() < 0.4 else 0.0,
        "fissure_field": _field(rng, 20),
        "opacity": rng.uniform(0.7, 0.92),
        "dots": [
            (_points_in_disc(rng, n_milia, 0.65), rng.uniform(0.025, 0.06, n_milia), _SCALE, 0.75),
            (_points_in_disc(rng, n_comedo, 0.65), rng.uniform(0.025, 0.06, n_comedo), _DARK_BROWN, 0.7),
        ],
    }


def _bcc_params(rng: np.random.Generator) -> _Params:
    n_nests = int(rng.integers(1, 5)) if rng.random() < 0.45 else 0
    return {
        **_shape_params(rng, lobes=0.16, ragged=0.04, edge=(0.1, 0.22)),
        "base": _mix(_PEARL, _PINK, rng.uniform(0, 1)),
        "opacity": rng.uniform(0.5, 0.8),
        "ulcer": rng.uniform(0.5, 0.8) if rng.random() < 0.25 else 0.0,
        "pigment": rng.uniform(0.2, 0.5) if rng.random() < 0.12 else 0.0,
        "vessels": _vessel_trees(rng, int(rng.integers(2, 6))),
        "dots": [(_points_in_disc(rng, n_nests, 0.6), rng.uniform(0.06, 0.14, n_nests), _BLUE_GREY, 0.75)],
    }


def _akiec_params(rng: np.random.Generator) -> _Params:
    return {
        **_shape_params(rng, lobes=0.2, ragged=0.06, edge=(0.2, 0.38)),
        "base": _mix(_PINK, _RED, rng.uniform(0.2, 1.0)),
        "brown": rng.uniform(0.2, 0.55) if rng.random() < 0.2 else 0.0,
        "rough": rng.uniform(0.04, 0.1),
        "scale": rng.uniform(0.5, 0.85),
        "scale_threshold": rng.uniform(0.3, 1.1),
        "scale_field": _field(rng, 24),
        "opacity": rng.uniform(0.55, 0.85),
    }


def _vasc_params(rng: np.random.Generator) -> _Params:
    n_lobules = int(rng.integers(3, 9))
    angle = rng.uniform(0, 2 * np.pi, n_lobules)
    centres = rng.uniform(0, 0.6, n_lobules)[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
    palette = np.stack([_RED, _DARK_RED, _PURPLE, _BLUE_PURPLE])
    shade = rng.dirichlet(np.ones(4) * 0.6, n_lobules).astype(np.float32)
    return {
        "lobule_centres": centres.astype(np.float32),
        "lobule_radii": rng.uniform(0.22, 0.45, n_lobules).astype(np.float32),
        "lobule_colours": shade @ palette,
        "edge": rng.uniform(0.03, 0.08),
        "opacity": rng.uniform(0.8, 0.95),
    }


def _df_params(rng: np.random.Generator) -> _Params:
    return {
        **_shape_params(rng, lobes=0.06, ragged=0.02, edge=(0.15, 0.3)),
        "centre": _mix(_BROWN, _DARK_BROWN, rng.uniform(0, 0.8)),
        "ring": _mix(_TAN, _LIGHT_BROWN, rng.uniform(0, 1)),
        "centre_size": rng.uniform(0.35, 0.6),
        "scar": rng.uniform(0.4, 0.8) if rng.random() < 0.5 else 0.0,
        "network": rng.uniform(0.1, 0.3),
        "opacity": rng.uniform(0.7, 0.92),
    }


def _points_in_disc(rng: np.random.Generator, n: int, radius: float) -> np.ndarray:
    r = radius * np.sqrt(rng.uniform(0, 1, n))
    angle = rng.uniform(0, 2 * np.pi, n)
    return np.stack([r * np.cos(angle), r * np.sin(angle)], 1)


def _vessel_trees(rng: np.random.Generator, n_trees: int) -> list[np.ndarray]:
    trees = []
    for _ in range(n_trees):
        start = rng.uniform(-0.5, 0.5, 2)
        trees.extend(_branch(rng, start, rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 0.8), depth=0))
    return trees


def _branch(
    rng: np.random.Generator, start: np.ndarray, heading: float, length: float, depth: int
) -> list[np.ndarray]:
    steps = 6
    turns = heading + np.cumsum(rng.normal(0, 0.35, steps))
    points = start + np.cumsum(np.stack([np.cos(turns), np.sin(turns)], 1) * length / steps, 0)
    points = np.vstack([start, points])
    outside = np.flatnonzero(np.hypot(points[:, 0], points[:, 1]) > 0.9)
    if outside.size:
        return [points[: max(outside[0], 2)]]
    branches = [points]
    if depth < 2:
        for _ in range(int(rng.integers(1, 3))):
            fork = points[int(rng.integers(2, steps + 1))]
            turn = rng.choice([-1, 1]) * rng.uniform(0.4, 1.0)
            branches.extend(_branch(rng, fork, heading + turn, length * 0.6, depth + 1))
    return branches


_CLASS_PARAMS = {
    "akiec": _akiec_params, "bcc": _bcc_params, "bkl": _bkl_params, "df": _df_params,
    "mel": _mel_params, "nv": _nv_params, "vasc": _vasc_params,
}


def _view_params(lesion: _Params, rng: np.random.Generator) -> _Params:
    n_hairs = int(rng.integers(1, 10)) if rng.random() < 0.3 else 0
    return {
        "cx": lesion["cx"] + rng.normal(0, 0.06),
        "cy": lesion["cy"] + rng.normal(0, 0.05),
        "angle": lesion["angle"] + rng.normal(0, 0.3),
        "radius": lesion["radius"] * float(np.exp(rng.normal(0, 0.08))),
        "skin_field": rng.standard_normal((3, 4)).astype(np.float32),
        "redness_field": rng.standard_normal((3, 4)).astype(np.float32),
        "gain": rng.uniform(0.88, 1.08),
        "cast": 1 + rng.normal(0, 0.035, 3),
        "gamma": float(np.exp(rng.normal(0, 0.1))),
        "vignette": rng.uniform(0.1, 0.9),
        "vignette_start": rng.uniform(0.45, 0.85),
        "field_of_view": rng.uniform(0.9, 1.05) if rng.random() < 0.25 else 0.0,
        "noise": rng.uniform(0.004, 0.025),
        "noise_offset": tuple(int(i) for i in rng.integers(0, _NOISE_MARGIN, 2)),
        "blur": rng.uniform(0.4, 1.2) if rng.random() < 0.2 else 0.0,
        "hairs": [_hair(rng) for _ in range(n_hairs)],
    }


def _hair(rng: np.random.Generator) -> np.ndarray:
    start = rng.uniform(-1.6, 1.6, 2)
    heading = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(heading), np.sin(heading)])
    normal = np.array([-direction[1], direction[0]])
    t = np.linspace(0, 1, 10)[:, None]
    return start + t * rng.uniform(0.5, 2.0) * direction + t * (1 - t) * rng.normal(0, 0.5) * normal


def _boundary_distance(p: _Params, u: np.ndarray, v: np.ndarray, sample: _Sampler) -> np.ndarray:
    """Distance from the lesion centre relative to its lobed, ragged border (1 on the border)."""
    z = np.empty(u.shape, np.complex64)
    z.real, z.imag = u, v
    rho = np.abs(z)
    direction = z / np.maximum(rho, 1e-6)
    # Horner's scheme for sum_k c_k exp(i k theta), k = 2..6, avoids arctan2 and cosines per pixel.
    harmonics = p["harmonics"]
    poly = np.full(u.shape, harmonics[-1], np.complex64)
    for c in harmonics[-2::-1]:
        poly = poly * direction + c
    boundary = 1 + (poly * direction * direction).real
    return rho / np.maximum(boundary, 0.3) + p["ragged"] * sample(p["ragged_field"])


def _mask(d: np.ndarray, edge: float) -> np.ndarray:
    return _smoothstep(0.5 + (1 - d) / edge)


def _network(values: np.ndarray, width: float = 0.2) -> np.ndarray:
    """Reticular, pigment-network-like lines along the zero set of a random field, in [0, 1]."""
    return np.exp(-np.square(values / width))


def _paint_nv(p: _Params, u: np.ndarray, v: np.ndarray, sample: _Sampler) -> _Painted:
    d = _boundary_distance(p, u, v, sample)
    shade = 1 + 0.06 * sample(p["low_field"]) - p["centre_dark"] * _smoothstep(1 - d)
    shade -= p["network"] * _network(sample(p["high_field"])) * _smoothstep(1.2 - d)
    return p["base"] * shade[..., None], _mask(d, p["edge"]) * p["opacity"]


def _paint_mel(p: _Params, u: np.ndarray, v: np.ndarray, sample: _Sampler) -> _Painted:
    d = _boundary_distance(p, u, v, sample)
    along = p["direction"][0] * u + p["direction"][1] * v
    logits = np.stack([2.2 * sample(f) + b * along for f, b in zip(p["colour_fields"], p["colour_bias"])])
    weights = np.exp(logits - logits.max(0))
    weights /= weights.sum(0)
    colour = np.einsum("khw,kc->hwc", weights, p["colours"])
    colour *= (1 - p["network"] * _network(sample(p["high_field"]), 0.3))[..., None]
    if p["veil"]:
        veil = p["veil"] * _smoothstep(sample(p["mid_field"]) - 0.3)
        colour += veil[..., None] * (_VEIL - colour)
    return colour, _mask(d, p["edge"]) * p["opacity"]


def _paint_bkl(p: _Params, u: np.ndarray, v: np.ndarray, sample: _Sampler) -> _Painted:
    d = _boundary_distance(p, u, v, sample)
    shade = 1 + p["mottle"] * sample(p["mid_field"]) + 0.04 * sample(p["high_field"])
    if p["fissures"]:
        shade -= p["fissures"] * _network(sample(p["fissure_field"]), 0.12)
    return p["base"] * shade[..., None], _mask(d, p["edge"]) * p["opacity"]


def _paint_bcc(p: _Params, u: np.ndarray, v: np.ndarray, sample: _Sampler) -> _Painted:
    d = _boundary_distance(p, u, v, sample)
    low = sample(p["low_field"])
    colour = p["base"] * (1 + 0.05 * sample(p["mid_field"]))[..., None]
    if p["pigment"]:
        spots = p["pigment"] * _smoothstep(low - 0.2)
        colour += spots[..., None] * (_BROWN - colour)
    if p["ulcer"]:
        ulcer = p["ulcer"] * _smoothstep(2 * (low - 0.6)) * _smoothstep(1.2 - 1.5 * d)
        colour += ulcer[..., None] * (_DARK_RED - colour)
    return colour, _mask(d, p["edge"]) * p["opacity"]


def _paint_akiec(p: _Params, u: np.ndarray, v: np.ndarray, sample: _Sampler) -> _Painted:
    d = _boundary_distance(p, u, v, sample)
    colour = p["base"] * (1 + p["rough"] * sample(p["high_field"]))[..., None]
    if p["brown"]:
        colour += p["brown"] * (_LIGHT_BROWN - colour)
    scale = p["scale"] * _smoothstep(1.5 * (sample(p["mid_field"]) - p["scale_threshold"]) + 0.5)
    scale *= _smoothstep(0.5 + 0.7 * sample(p["scale_field"]))
    colour += scale[..., None] * (_SCALE - colour)
    alpha = np.maximum(_mask(d, p["edge"]) * p["opacity"], scale * _mask(d, 0.1))
    return colour, alpha


def _paint_vasc(p: _Params, u: np.ndarray, v: np.ndarray, sample: _Sampler) -> _Painted:
    du = u[None] - p["lobule_centres"][:, 0, None, None]
    dv = v[None] - p["lobule_centres"][:, 1, None, None]
    inside = 1 - np.hypot(du, dv) / p["lobule_radii"][:, None, None]
    lobules = _smoothstep(0.5 + inside * (p["lobule_radii"][:, None, None] / p["edge"]))
    weights = lobules**4 + 1e-6
    colour = np.einsum("khw,kc->hwc", weights, p["lobule_colours"]) / weights.sum(0)[..., None]
    shade = 1 - 0.25 * _smoothstep(inside).max(0)
    alpha = np.minimum(lobules.sum(0), 1) * (0.75 + 0.25 * lobules.max(0)) * p["opacity"]
    return colour * shade[..., None], alpha


def _paint_df(p: _Params, u: np.ndarray, v: np.ndarray, sample: _Sampler) -> _Painted:
    d = _boundary_distance(p, u, v, sample)
    core = _smoothstep((p["centre_size"] - d) / 0.25 + 0.5)
    colour = p["ring"] + core[..., None] * (p["centre"] - p["ring"])
    colour *= (1 - p["network"] * _network(sample(p["high_field"])) * (1 - core))[..., None]
    if p["scar"]:
        scar = p["scar"] * _smoothstep((0.5 * p["centre_size"] - d + 0.1 * sample(p["mid_field"])) / 0.1)
        colour += scar[..., None] * (_WHITE_SCAR - colour)
    return colour, _mask(d, p["edge"]) * p["opacity"]


_LESION_PAINTERS = {
    "akiec": _paint_akiec, "bcc": _paint_bcc, "bkl": _paint_bkl, "df": _paint_df,
    "mel": _paint_mel, "nv": _paint_nv, "vasc": _paint_vasc,
}


def _skin(lesion: _Params, view: _Params, width: int, height: int) -> np.ndarray:
    light = 1 + 0.035 * view["skin_field"]
    red = lesion["redness"] * (0.6 + 0.4 * view["redness_field"])
    coarse = _mix(_SKIN_LIGHT, _SKIN_DARK, lesion["skin_tone"]) * light[..., None]
    coarse -= red[..., None] * np.array([0, 1, 0.7], np.float32)
    small = Image.fromarray(np.clip(coarse * 255 + 0.5, 0, 255).astype(np.uint8))
    skin = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    return skin * np.float32(1 / 255)


def _resize(field: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(field).resize((width, height), Image.Resampling.BICUBIC))


def _vignette(grid: _Grid, view: _Params) -> np.ndarray:
    start = view["vignette_start"]
    dark = 1 - view["vignette"] * _smoothstep((grid.corner_distance - start) / (1.05 - start))
    if view["field_of_view"]:
        dark *= _smoothstep((view["field_of_view"] - grid.corner_distance) / 0.03)
    return dark


def _draw_overlays(image: Image.Image, lesion: _Params, view: _Params, grid: _Grid) -> None:
    line_width = max(1, round(grid.unit * 0.015))
    if lesion["vessels"]:
        mask = Image.new("L", image.size)
        draw = ImageDraw.Draw(mask)
        for points in lesion["vessels"]:
            draw.line(_to_pixels(points, view, grid), fill=200, width=line_width)
        image.paste(_rgb(_VESSEL), mask=mask)
    scale = float(view["radius"] * grid.unit)
    for centres, radii, colour, strength in lesion["dots"]:
        if len(radii) == 0:
            continue
        mask = Image.new("L", image.size)
        draw = ImageDraw.Draw(mask)
        for (x, y), r in zip(_to_pixels(centres, view, grid), radii * scale):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=round(255 * strength))
        image.paste(_rgb(colour), mask=mask.filter(ImageFilter.GaussianBlur(max(0.5, 0.015 * scale))))
    if view["hairs"]:
        mask = Image.new("L", image.size)
        draw = ImageDraw.Draw(mask)
        identity = {"angle": 0.0, "radius": 1.0, "cx": 0.0, "cy": 0.0}
        for hair in view["hairs"]:
            draw.line(_to_pixels(hair, identity, grid), fill=220, width=line_width)
        image.paste(_rgb(_HAIR), mask=mask)


def _noise(grid: _Grid, view: _Params) -> np.ndarray:
    """Sensor noise: a random crop of a fixed noise texture (much cheaper than fresh noise per image)."""
    texture = _noise_texture(grid.width, grid.height)
    x, y = view["noise_offset"]
    return texture[y : y + grid.height, x : x + grid.width] * np.float32(view["noise"])


@lru_cache(maxsize=8)
def _noise_texture(width: int, height: int) -> np.ndarray:
    margin = _NOISE_MARGIN
    texture = np.random.default_rng(0).standard_normal((height + margin, width + margin, 3), dtype=np.float32)
    texture.flags.writeable = False
    return texture


def _to_uint8(image: np.ndarray) -> np.ndarray:
    image *= 255
    image += 0.5
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)


def _rgb(colour: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(c * 255 + 0.5) for c in colour)


def _tone_curve(view: _Params) -> list[int]:
    """Lookup table for Image.point: exposure gain, colour cast and gamma of this shot."""
    x = np.arange(256) / 255
    curves = [np.clip(x * (view["gain"] * c), 0, 1) ** view["gamma"] for c in view["cast"]]
    return np.round(np.concatenate(curves) * 255).astype(int).tolist()
