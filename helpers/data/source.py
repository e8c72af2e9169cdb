"""Which data a run uses: explicit data_dir, then $HAM10000_DIR, then data/ham10000/, then the synthetic demo set.

Every data set is found the same way (`resolve_path`): a parameter, else an environment variable, else its
place under data/. So are the optional DermaMNIST split CSV (`find_dermamnist_csv`), the ISIC 2018 Task 3 test
folder (`find_isic2018_test`), melanoma10k (`helpers.data.melanoma`) and the HAM10000 folder the DermaMNIST split
builder reads (`helpers.data.dermamnist`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DataError
from .ham10000 import METADATA_NAME

HAM10000_ENV = "HAM10000_DIR"
DERMAMNIST_ENV = "DERMAMNIST_SPLIT_CSV"
DERMAMNIST_FILE = "dermamnist_split.csv"
ISIC2018_TEST_ENV = "ISIC2018_TEST_DIR"
ISIC2018_TEST_FOLDER = "isic2018_test"
ISIC2018_TEST_IMAGES_FOLDER = "images"
ISIC2018_TEST_LABELS = "labels.csv"
MODELS_ENV = "SKIN_LESION_MODELS_DIR"
SYNTHETIC_IMAGES = 700
DATASET_NAMES = {"ham10000": "HAM10000", "melanoma10k": "melanoma10k (Melanoma Skin Cancer Dataset of 10000 Images)"}


@dataclass(frozen=True)
class DataSource:
    """A resolved data folder, what kind of data it holds and how it was chosen."""

    kind: str
    root: Path
    origin: str

    @property
    def synthetic(self) -> bool:
        """True for the built-in synthetic demo set."""
        return self.kind == "synthetic"


def project_root() -> Path:
    """The project checkout holding helpers/ (or the working directory for a non-editable install)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else Path.cwd()


def data_home() -> Path:
    """The git-ignored data/ folder where downloads, caches and the synthetic set live."""
    return project_root() / "data"


def models_home() -> Path:
    """The folder where notebooks save checkpoints and grid results: $SKIN_LESION_MODELS_DIR, else models/ (git-ignored)."""
    return Path(os.environ[MODELS_ENV]) if os.environ.get(MODELS_ENV) else project_root() / "models"


def resolve_path(value: str | Path | None, env: str, default: Path, what: str, kind: str = "folder",
                 usable: Callable[[Path], bool] | None = None) -> tuple[Path, str] | None:
    """Where a data setting points, and where that came from: value (the parameter `what`), else $env, else default.

    Returns (path, origin), origin being "<what> parameter", "$<env>" or "data/<name>"; None when neither is set
    and default is not there (or not `usable`). A value or variable naming no existing folder (kind "folder")
    or file (kind "file") is a DataError naming it.
    """
    exists = Path.is_dir if kind == "folder" else Path.is_file
    for given, name, origin in ((value, what, f"{what} parameter"), (os.environ.get(env), f"${env}", f"${env}")):
        if given not in (None, ""):
            path = Path(given)
            if not exists(path):
                raise DataError(f"{name} points to {path}, which is not an existing {kind}")
            return (path.resolve() if kind == "folder" else path), origin
    if exists(default) and (usable is None or usable(default)):
        return default, f"data/{default.name}" + ("/" if kind == "folder" else "")
    return None


SYNTHETIC = "synthetic"  # the data_dir value that asks for the synthetic demo set


def resolve_data_source(data_dir: str | Path | None = None, synthetic_images: int = SYNTHETIC_IMAGES) -> DataSource:
    """Pick the data folder: data_dir, $HAM10000_DIR, data/ham10000/, else the synthetic demo set.

    data_dir="synthetic" asks for the synthetic demo set even where real data is configured (to compare the two)."""
    if data_dir == SYNTHETIC:
        return _synthetic(synthetic_images, "built-in synthetic demo set (data_dir='synthetic')")
    default = data_home() / "ham10000"
    found = resolve_path(data_dir, HAM10000_ENV, default, "data_dir", usable=lambda d: any(d.rglob(METADATA_NAME)))
    if found is not None:
        return DataSource("ham10000", *found)
    if default.is_dir() and any(default.iterdir()):
        raise DataError(f"{default} exists but holds no {METADATA_NAME}: finish the download "
                        "(python -m helpers.data download) or remove the folder")
    return _synthetic(synthetic_images, "built-in synthetic demo set (no real data configured)")


def _synthetic(n_images: int, origin: str) -> DataSource:
    from .synthetic import make_synthetic

    return DataSource("synthetic", make_synthetic(data_home() / "synthetic", n_images=n_images, progress=False), origin)


def find_dermamnist_csv(path: str | Path | None = None) -> Path | None:
    """The DermaMNIST split CSV: path, else $DERMAMNIST_SPLIT_CSV, else data/dermamnist_split.csv; None if none is there."""
    found = resolve_path(path, DERMAMNIST_ENV, data_home() / DERMAMNIST_FILE, "dermamnist_csv", kind="file")
    return found[0] if found else None


def find_isic2018_test(path: str | Path | None = None) -> Path | None:
    """The ISIC 2018 Task 3 test folder (images/, labels.csv): path, else $ISIC2018_TEST_DIR, else data/isic2018_test/.

    None when neither is set and data/isic2018_test/ is absent (or empty); a folder given, set or left at the
    default that lacks images/ or labels.csv is a DataError naming the folder and where it came from.
    """
    default = data_home() / ISIC2018_TEST_FOLDER
    found = resolve_path(path, ISIC2018_TEST_ENV, default, "isic2018_test_dir", usable=lambda d: any(d.iterdir()))
    if found is None:
        return None
    folder, origin = found
    missing = _isic2018_test_missing(folder)
    if missing:
        raise DataError(f"{folder} (from {origin}) holds no {' and no '.join(missing)}, so it is no ISIC 2018 test "
                        "folder; `python -m helpers.data download --dataset isic2018-test` fetches one")
    return folder


def _isic2018_test_missing(folder: Path) -> list[str]:
    parts = ((f"{ISIC2018_TEST_IMAGES_FOLDER}/", (folder / ISIC2018_TEST_IMAGES_FOLDER).is_dir()),
             (ISIC2018_TEST_LABELS, (folder / ISIC2018_TEST_LABELS).is_file()))
    return [name for name, present in parts if not present]


def display_path(path: str | Path) -> str:
    """A path as reports show it: relative to the project when inside it, else its last two parts (no machine paths)."""
    path = Path(path)
    try:
        return path.resolve().relative_to(project_root().resolve()).as_posix()
    except ValueError:
        return "…/" + "/".join(path.parts[-2:])


def describe(source: DataSource, n_images: int | None = None, hint: str | None = None) -> str:
    """A banner line announcing the data in use; loud for the synthetic set, whose last line is hint (how to get real data)."""
    count = f", {n_images:,} images" if n_images is not None else ""
    if source.synthetic:
        bar = "!" * 78
        hint = hint or f"Set {HAM10000_ENV} or data_dir, or run `python -m helpers.data download`, for HAM10000."
        return (f"{bar}\n!! SYNTHETIC DEMO DATA{count} in {display_path(source.root)}\n"
                "!! Drawn lesions, not real skin: every number below is a pipeline demo, not a result.\n"
                f"!! {hint}\n{bar}")
    return f"DATA: {DATASET_NAMES.get(source.kind, source.kind)} in {display_path(source.root)} (from {source.origin}{count})"
