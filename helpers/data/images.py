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
from PIL import Image, ImageOps
from tqdm import tqdm

from ..core.errors import DataError
from ..core.io import atomic_path, remove_stale_temporaries

RESIZE_POLICIES: tuple[str, ...] = ("center_crop", "squash", "pad")
CACHE_VERSION = 1


ALPHA_BACKGROUND: tuple[int, int, int] = (255, 255, 255)  # transparent pixels are composited on white
UNIFORM_STD = 2.0  # an image none of whose 8-bit channels varies more than this (standard deviation) is "nearly uniform"
TINY_FRACTION = 0.5  # an image with a side under this fraction of the model's input side is "much smaller"
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_DEEP_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})


def image_suffixes() -> frozenset[str]:
    """The file suffixes (lower case, with the dot) of every format Pillow can open."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def list_images(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """Every file under folder, sorted, split into (image files by suffix, other files)."""
    suffixes = image_suffixes()
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file())
    return [p for p in files if p.suffix.lower() in suffixes], [p for p in files if p.suffix.lower() not in suffixes]


def _decode(path: str | Path, draft_size: tuple[int, int] | None) -> tuple[Image.Image, tuple[int, int]]:
    """The image as RGB and its size as stored; DataError names the file if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            stored = image.size
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", draft_size)
            image.load()
            return to_rgb(image), stored
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot decode image {path}: {err}") from err


def to_rgb(image: Image.Image) -> Image.Image:
    """A decoded image upright (EXIF orientation applied) as 8-bit RGB: deep images scaled, alpha composited."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode == "RGB":
        return image
    if image.mode in _DEEP_MODES:
        return Image.fromarray(deep_to_uint8(np.asarray(image)), "L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def deep_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit or float pixels as uint8, scaled by their real range, never clipped.

    Integers are divided by the full scale of the smallest bit depth (8, 10, 12, 14 or 16 bits, else their maximum)
    that holds their largest value, so a 16-bit copy of an 8-bit image (value * 257) gives the 8-bit values back;
    floats within [0, 1] are multiplied by 255, other floats stretched from their minimum to their maximum.
    """
    values = np.nan_to_num(pixels.astype(np.float64))
    if np.issubdtype(pixels.dtype, np.floating):
        low, high = (0.0, 1.0) if values.min() >= 0 and values.max() <= 1 else (values.min(), values.max())
    else:
        peak = max(float(values.max()), 0.0)
        low = min(float(values.min()), 0.0)
        high = next((2.0 ** bits - 1 for bits in (8, 10, 12, 14, 16) if peak <= 2 ** bits - 1), peak)
    scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
    return np.rint(scaled).astype(np.uint8)


def open_rgb(path: str | Path, draft_size: tuple[int, int] | None = None) -> Image.Image:
    """Decode an image file fully and return it upright as 8-bit RGB; DataError names the file if it fails."""
    return _decode(path, draft_size)[0]


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


def read_image(path: str | Path, size: int, policy: str = "center_crop") -> tuple[np.ndarray, list[str]]:
    """A user's image as load_resized gives it, with warnings (each naming the file) when it is unusable."""
    image, stored = _decode(path, (size, size))
    pixels = np.asarray(resize_square(image, size, policy), dtype=np.uint8)
    return pixels, image_warnings(path, pixels, stored, size)


def image_warnings(path: str | Path, pixels: np.ndarray, stored: tuple[int, int], size: int) -> list[str]:
    """Why an image is unusable for a size-pixel model: much smaller than its input, or nearly uniform."""
    found = []
    if min(stored) < TINY_FRACTION * size:
        found.append(f"warning: {path} is {stored[0]}x{stored[1]} pixels, under {TINY_FRACTION:g} of the model's "
                     f"{size}-pixel input side: the prediction is unreliable")
    spread = float(pixels.reshape(-1, pixels.shape[-1]).std(axis=0).max())  # per channel: one colour is uniform too
    if spread < UNIFORM_STD:
        found.append(f"warning: {path} is nearly uniform (pixel standard deviation {spread:.2f} < {UNIFORM_STD:g}): "
                     "the prediction is unreliable")
    return found


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
