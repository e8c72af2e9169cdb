"""Decode and resize images once into a uint8 cache on disk, loaded memory-mapped.

Resize policy for HAM10000's 4:3 images (600x450, or 200x150 in the offline copy), to a square
`size` x `size` input:

- ``center_crop`` (default): scale the shorter side to `size`, keep the central square. The lesion
  is centred in dermoscopy, so this drops 1/8 of the width on each side (mostly surrounding skin)
  and never distorts shapes, which matter for border irregularity.
- ``squash``: scale both sides to `size`, keeping all pixels but stretching the lesion vertically
  by 4/3 (what ``transforms.Resize((128, 128))`` in the reference notebooks does).
- ``pad``: scale the longer side to `size` and pad top and bottom with black, keeping everything
  undistorted at the cost of 1/4 of the pixels.
"""

from __future__ import annotations

import glob
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import DataError
from ..io import atomic_path, remove_stale_temporaries

RESIZE_POLICIES: tuple[str, ...] = ("center_crop", "squash", "pad")
CACHE_VERSION = 1


def open_rgb(path: str | Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image file fully and return it as RGB; DataError names the file if it fails."""
    try:
        with Image.open(path) as image:
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", draft_size)
            image.load()
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot decode image {path}: {err}") from err


def resize_square(image: Image.Image, size: int, policy: str = "center_crop") -> Image.Image:
    """Resize an RGB image to size x size with the given policy (see the module docstring)."""
    check_policy(policy)
    width, height = image.size
    if policy == "squash":
        return image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    scale = size / (min if policy == "center_crop" else max)(width, height)
    scaled = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = image.resize(scaled, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if policy == "center_crop":
        left, top = (scaled[0] - size) // 2, (scaled[1] - size) // 2
        return image.crop((left, top, left + size, top + size))
    canvas = Image.new("RGB", (size, size))
    canvas.paste(image, ((size - scaled[0]) // 2, (size - scaled[1]) // 2))
    return canvas


def check_policy(policy: str) -> None:
    """Raise ValueError naming the parameter when policy is not a known resize policy."""
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"resize policy must be one of {', '.join(RESIZE_POLICIES)}, got {policy!r}")


def load_resized(path: str | Path, size: int, policy: str = "center_crop") -> np.ndarray:
    """Decode one image file and return it resized as a (size, size, 3) uint8 array."""
    image = open_rgb(path, draft_size=(size, size))
    return np.asarray(resize_square(image, size, policy), dtype=np.uint8)


def load_resized_mask(path: str | Path, size: int, policy: str = "center_crop") -> np.ndarray:
    """A lesion mask file resized like its image: a (size, size) boolean array, True on the lesion."""
    try:
        with Image.open(path) as mask:
            mask = mask.convert("L").convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"cannot read mask {path}: {err}") from err
    return np.asarray(resize_square(mask, size, policy))[..., 0] > 127


def cache_fingerprint(paths: Sequence[str | Path], size: int, policy: str) -> str:
    """Hash of the image files (path, byte size, mtime), their order, the size and the policy."""
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{policy}".encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"\n{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def cache_path(paths: Sequence[str | Path], size: int, cache_dir: str | Path, policy: str = "center_crop",
               name: str = "images") -> Path:
    """The cache file `cached_images` reads or builds for these arguments (whether or not it exists yet)."""
    return Path(cache_dir) / f"{name}-{size}px-{policy}-{cache_fingerprint(paths, size, policy)}.npy"


def cached_images(
    paths: Sequence[str | Path],
    size: int,
    cache_dir: str | Path,
    policy: str = "center_crop",
    name: str = "images",
    workers: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Return a read-only memory-mapped (N, size, size, 3) uint8 array of the images, building it if needed.

    The cache file name carries a fingerprint of the sources, size and policy, so any change
    rebuilds it; it is written to a temporary file and renamed, so an interrupted build leaves
    no half-written cache, and the temporary is removed on any exception. Older caches of the same
    name, size and policy are removed, and so are the temporaries of killed builds of them.
    """
    check_policy(policy)
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    cache_dir = Path(cache_dir)
    prefix = f"{name}-{size}px-{policy}-"
    target = cache_path(paths, size, cache_dir, policy, name)
    remove_stale_temporaries(cache_dir, f"{glob.escape(prefix)}*.npy")
    if not target.exists():
        _build(paths, size, policy, target, workers, progress)
        for stale in cache_dir.glob(f"{prefix}*.npy"):
            if stale != target:
                stale.unlink(missing_ok=True)
    return np.load(target, mmap_mode="r")


def _build(paths: Sequence[str | Path], size: int, policy: str, target: Path,
           workers: int | None, progress: bool) -> None:
    with atomic_path(target) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size, 3))

        def fill(i: int) -> None:
            array[i] = load_resized(paths[i], size, policy)

        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            jobs = pool.map(fill, range(len(paths)))
            list(tqdm(jobs, total=len(paths), desc=f"cache {size}px {policy}", disable=not progress))
        array.flush()
        del array
