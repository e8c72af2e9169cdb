"""Shared fixtures: a small synthetic HAM10000 folder, broken copies of it, and the real data when configured."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from helpers.data.synthetic import make_synthetic


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic data set in the HAM10000 layout, made once per test session."""
    return make_synthetic(tmp_path_factory.mktemp("synthetic") / "ham", n_images=140, image_size=(80, 60), progress=False)


@pytest.fixture
def ham_copy(synthetic_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the synthetic set, for tests that break it."""
    return Path(shutil.copytree(synthetic_dir, tmp_path / "ham"))


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """The real HAM10000 folder from $HAM10000_DIR; skips when it is not configured."""
    path = os.environ.get("HAM10000_DIR")
    if not path or not Path(path).is_dir():
        pytest.skip("real HAM10000 data not configured (set HAM10000_DIR)")
    return Path(path)


@pytest.fixture
def no_kaggle_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME without Kaggle credentials, cwd an empty folder, no terminal to prompt on; returns HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return home
