"""Kaggle through opendatasets (the course's tool): credentials from $KAGGLE_USERNAME/$KAGGLE_KEY or a kaggle.json,
put where opendatasets looks without prompting; and HAM10000 from Kaggle's kmader/skin-cancer-mnist-ham10000."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .fetch import DownloadError
from .ham10000 import IMAGE_FOLDERS, METADATA_NAME

KAGGLE_DATASET = "kmader/skin-cancer-mnist-ham10000"
KAGGLE_MARKER = ".kaggle.complete"
KAGGLE_TOKEN_HELP = (
    "Create a Kaggle API token at https://www.kaggle.com/settings (API > Create New Token) and either "
    "save the kaggle.json it gives you as ~/.kaggle/kaggle.json (chmod 600) or in the working folder, "
    "or set the environment variables KAGGLE_USERNAME and KAGGLE_KEY."
)
KAGGLE_HELP = KAGGLE_TOKEN_HELP + " Or use source='dataverse', which needs no account."


def download_kaggle(target: Path, dataset: str = KAGGLE_DATASET) -> Path:
    """Fetch HAM10000 from Kaggle with opendatasets; leave the metadata CSV and image folders in target."""
    target = Path(target).resolve()
    marker = target / KAGGLE_MARKER
    if marker.is_file() and marker.read_text().strip() == dataset and (target / METADATA_NAME).is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.kaggle-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        run_opendatasets(dataset, staging)
        _arrange_kaggle_layout(staging, target, dataset)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    marker.write_text(dataset + "\n")
    return target


def run_opendatasets(dataset: str, staging: Path, help_text: str | None = None) -> None:
    """Download the Kaggle dataset into staging with opendatasets; DownloadError (with help_text) when it fails."""
    import opendatasets

    help_text = KAGGLE_HELP if help_text is None else help_text
    url = f"https://www.kaggle.com/datasets/{dataset}"
    with _kaggle_credentials_in_cwd(help_text):
        try:
            opendatasets.download(url, data_dir=str(staging))
        except SystemExit as err:
            raise DownloadError(f"Kaggle refused the download of {url} (exit {err.code}): check that your "
                                f"credentials are valid. {help_text}") from err
        except Exception as err:
            raise DownloadError(f"downloading the Kaggle dataset {url} failed: {err}") from err


@contextlib.contextmanager
def _kaggle_credentials_in_cwd(help_text: str = KAGGLE_HELP) -> Iterator[None]:
    """Run the block where ./kaggle.json holds the credentials, the only place opendatasets looks before prompting."""
    env = _kaggle_env_credentials()
    config = _find_kaggle_json()
    if env is None and config is None:
        if not _stdin_can_prompt():
            raise DownloadError(f"no Kaggle credentials found, and opendatasets cannot prompt for them "
                                f"because stdin is not interactive. {help_text}")
        yield
        return
    if env is None:
        with _working_directory(config.parent):
            yield
        return
    with tempfile.TemporaryDirectory(prefix="kaggle-credentials-") as folder:
        credentials = Path(folder) / "kaggle.json"
        credentials.touch(mode=0o600)
        credentials.write_text(json.dumps({"username": env[0], "key": env[1]}))
        with _working_directory(Path(folder)):
            yield


def _kaggle_env_credentials() -> tuple[str, str] | None:
    username, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    return (username, key) if username and key else None


def _find_kaggle_json() -> Path | None:
    home = Path.home()
    folders = [Path.cwd(), *([Path(os.environ["KAGGLE_CONFIG_DIR"])] if os.environ.get("KAGGLE_CONFIG_DIR") else []),
               home / ".kaggle", Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"]
    for candidate in (folder / "kaggle.json" for folder in folders):
        if _valid_kaggle_json(candidate):
            return candidate
    return None


def _valid_kaggle_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and bool(data.get("username")) and bool(data.get("key"))


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _stdin_can_prompt() -> bool:
    """True when a prompt can be answered: stdin is a terminal, or a Jupyter kernel that allows input()."""
    with contextlib.suppress(AttributeError, ValueError):
        if sys.stdin is not None and sys.stdin.isatty():
            return True
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return bool(getattr(getattr(shell, "kernel", None), "_allow_stdin", False))


def _arrange_kaggle_layout(staging: Path, target: Path, dataset: str) -> None:
    found = sorted(p for p in staging.rglob("*") if p.is_file() and p.name.lower() == METADATA_NAME.lower())
    if not found:
        raise DownloadError(f"the Kaggle dataset {dataset} holds no {METADATA_NAME}; "
                            f"got {', '.join(sorted(p.name for p in staging.iterdir())) or 'nothing'}")
    root = found[0].parent
    folders = _kaggle_image_folders(root)
    missing = [name for name in IMAGE_FOLDERS if name not in folders]
    if missing:
        raise DownloadError(f"the Kaggle dataset {dataset} lacks the image folder(s) {', '.join(missing)}; "
                            f"it holds {', '.join(sorted(p.name for p in root.iterdir()))}")
    for name, folder in folders.items():
        shutil.rmtree(target / name, ignore_errors=True)
        shutil.move(str(folder), str(target / name))
    shutil.move(str(found[0]), str(target / METADATA_NAME))


def _kaggle_image_folders(root: Path) -> dict[str, Path]:
    """Image folders by canonical name; lower-case duplicates that some Kaggle versions ship are dropped."""
    canonical = {name.lower(): name for name in IMAGE_FOLDERS}
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        name = canonical.get(child.name.lower())
        if child.is_dir() and name and (name not in found or child.name == name):
            found[name] = child
    return found
