"""The uint8 image cache: resize policies, memory-mapped loading, rebuild on change, atomic builds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.data import DataError, load_ham10000
from helpers.data.images import RESIZE_POLICIES, cached_images, resize_square


@pytest.fixture
def paths(ham_copy: Path) -> list[str]:
    return load_ham10000(ham_copy)["path"].tolist()[:12]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_resize_policies_on_a_4_by_3_image() -> None:
    image = Image.new("RGB", (200, 150), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 150))  # a blue strip on the left tenth
    crop, squash, pad = (np.asarray(resize_square(image, 64, p)) for p in ("center_crop", "squash", "pad"))
    assert crop.shape == squash.shape == pad.shape == (64, 64, 3)
    assert crop[:, :, 2].max() < 50  # the left eighth of the width is cropped away
    assert squash[32, 2, 2] > 200  # squash keeps it
    assert pad[0].max() == 0 and pad[-1].max() == 0 and pad[32, 32, 0] > 200  # letterboxed


def test_unknown_policy_is_named() -> None:
    with pytest.raises(ValueError, match="resize policy"):
        resize_square(Image.new("RGB", (8, 8)), 4, "stretch")


def test_cache_builds_once_and_loads_memory_mapped(paths: list[str], cache_dir: Path) -> None:
    first = cached_images(paths, 32, cache_dir, progress=False)
    assert isinstance(first, np.memmap) and first.dtype == np.uint8 and first.shape == (12, 32, 32, 3)
    [cache_file] = cache_dir.glob("*.npy")
    mtime = cache_file.stat().st_mtime_ns
    again = cached_images(paths, 32, cache_dir, progress=False)
    assert cache_file.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(first, again)
    assert first.mean() > 10  # real pixels, not an empty array


@pytest.mark.parametrize("change", ["size", "policy", "source"])
def test_cache_rebuilds_when_inputs_change(paths: list[str], cache_dir: Path, change: str) -> None:
    before = np.array(cached_images(paths, 32, cache_dir, progress=False))
    if change == "size":
        after = cached_images(paths, 24, cache_dir, progress=False)
        assert after.shape[1:3] == (24, 24)
    elif change == "policy":
        after = cached_images(paths, 32, cache_dir, policy="pad", progress=False)
        assert not np.array_equal(before, after)
    else:
        Image.new("RGB", (80, 60), (0, 255, 0)).save(paths[0])
        os.utime(paths[0], ns=(1, 1))
        after = cached_images(paths, 32, cache_dir, progress=False)
        assert after[0, 16, 16, 1] > 200 and not np.array_equal(before[0], after[0])
        np.testing.assert_array_equal(before[1:], after[1:])
        assert len(list(cache_dir.glob("*.npy"))) == 1  # the stale cache is gone


def test_interrupted_build_leaves_no_cache(paths: list[str], cache_dir: Path) -> None:
    good = np.array(cached_images(paths, 32, cache_dir, progress=False))
    Path(paths[5]).write_bytes(b"broken")
    with pytest.raises(DataError, match=Path(paths[5]).name):
        cached_images(paths, 32, cache_dir, progress=False)
    leftovers = sorted(p.name for p in cache_dir.iterdir())
    assert len(leftovers) == 1 and leftovers[0].endswith(".npy")  # only the last good cache, no temp file
    np.testing.assert_array_equal(np.load(cache_dir / leftovers[0]), good)


def test_all_policies_build(paths: list[str], cache_dir: Path) -> None:
    for policy in RESIZE_POLICIES:
        assert cached_images(paths[:3], 16, cache_dir, policy=policy, progress=False).shape == (3, 16, 16, 3)
