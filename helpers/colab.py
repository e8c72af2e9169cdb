"""Google Colab: the setup cell and "Open in Colab" badge every notebook carries, and the data on a Colab runtime.

`python -m helpers.colab notebooks [--ref REF]` rewrites each notebook's setup cell, title badge and Colab metadata
from the one repository URL, `[project.urls] Repository` in pyproject.toml ($SKIN_LESION_REPO overrides it for
forks). On Colab the setup cell clones and installs the project, then calls `prepare_data()`, which finds or
fetches HAM10000 (a Google Drive folder, Kaggle with Colab secrets or kaggle.json, the Harvard Dataverse on request)
and points the data variables at it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from pathlib import Path

import nbformat

from .data.catalog import download_ham10000
from .data.fetch import DownloadError
from .data.ham10000 import METADATA_NAME
from .data.melanoma import FOLDER_NAME as MELANOMA_FOLDER
from .data.melanoma import MELANOMA10K_ENV
from .data.source import (DERMAMNIST_ENV, DERMAMNIST_FILE, HAM10000_ENV, ISIC2018_TEST_ENV, ISIC2018_TEST_FOLDER,
                          data_home, project_root)
from .core.io import atomic_open

REPO_ENV = "SKIN_LESION_REPO"
REF_ENV = "SKIN_LESION_REF"
DRIVE_ENV = "SKIN_LESION_DRIVE_DIR"
DOWNLOAD_ENV = "SKIN_LESION_DOWNLOAD"
DEFAULT_REF = "main"
BOOTSTRAP_TAG = "colab-bootstrap"
CLONE_FOLDER = "skin-lesion-course"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
COLAB_GITHUB = "https://colab.research.google.com/github"
BADGE_PATTERN = re.compile(r"\n\n\[!\[Open In Colab\]\([^)\s]*\)\]\([^)\s]*\)(?=\n|$)")
REF_PATTERN = re.compile(r'os\.environ\.get\("' + REF_ENV + r'", "([^"]+)"\)')
GPU_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}
DRIVE_MOUNT = Path("/content/drive")
COLAB_CONTENT = Path("/content")
DOWNLOAD_CHOICES = ("kaggle", "dataverse", "none")
DRIVE_EXAMPLE = "/content/drive/MyDrive/skin-lesion-data"

BOOTSTRAP_TEMPLATE = """\
#@title Colab setup (installs the project and finds its data; does nothing outside Colab)
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("google") and importlib.util.find_spec("google.colab"):
    if not importlib.util.find_spec("helpers"):  # a fresh runtime: fetch the project, install its runtime dependencies
        repo = os.environ.get("SKIN_LESION_REPO", {repo})
        ref = os.environ.get("SKIN_LESION_REF", {ref})
        clone = os.path.abspath("{clone}")
        if not os.path.isdir(clone):
            subprocess.run(["git", "clone", "--depth", "1", "--branch", ref, repo, clone], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--editable", clone], check=True)
        sys.path.insert(0, clone)
    from helpers.colab import prepare_data
    prepare_data()  # cd into notebooks/, then HAM10000 from Google Drive, Kaggle or the Dataverse (else synthetic)"""


# --- the repository, badges and the setup cell ------------------------------------------------------------------

def repository_url(root: str | Path | None = None) -> str:
    """The project's repository: $SKIN_LESION_REPO, else [project.urls] Repository in pyproject.toml."""
    if os.environ.get(REPO_ENV):
        return os.environ[REPO_ENV]
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    path = Path(root or project_root()) / "pyproject.toml"
    url = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {}).get("urls", {}).get("Repository")
    if not url:
        raise ValueError(f"{path} has no [project.urls] Repository (and ${REPO_ENV} is not set)")
    return url


def github_slug(repo: str) -> str:
    """OWNER/REPO of a GitHub URL such as https://github.com/OWNER/REPO(.git); ValueError for anything else."""
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", repo)
    if not match:
        raise ValueError(f"the repository URL ({REPO_ENV} or [project.urls] Repository) must look like "
                         f"https://github.com/OWNER/REPO for Colab badges; got {repo!r}")
    return f"{match.group(1)}/{match.group(2)}"


def colab_url(repo: str, ref: str, notebook: str) -> str:
    """The Colab address that opens notebook (a path in the repository, e.g. notebooks/01_eda.ipynb) at ref."""
    return f"{COLAB_GITHUB}/{github_slug(repo)}/blob/{ref}/{notebook}"


def badge(repo: str, ref: str, notebook: str) -> str:
    """The "Open in Colab" badge in Markdown for notebook at ref."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(repo, ref, notebook)})"


def bootstrap_source(repo: str, ref: str = DEFAULT_REF) -> str:
    """The text of the Colab setup cell that clones repo at ref (both overridable at run time)."""
    for name, value in (("repo", repo), ("ref", ref)):
        if not value or re.search(r'["\\\s]', value):
            raise ValueError(f"{name} must be non-empty, without quotes, backslashes or spaces; got {value!r}")
    return BOOTSTRAP_TEMPLATE.format(repo=json.dumps(repo), ref=json.dumps(ref), clone=CLONE_FOLDER)


def is_bootstrap_cell(cell: dict) -> bool:
    """True for the cell tagged colab-bootstrap."""
    return BOOTSTRAP_TAG in cell.get("metadata", {}).get("tags", [])


def notebook_ref(notebook: nbformat.NotebookNode) -> str | None:
    """The ref that a notebook's setup cell clones by default, None when it has no setup cell."""
    for cell in filter(is_bootstrap_cell, notebook.cells):
        match = REF_PATTERN.search(cell.source)
        if match:
            return match.group(1)
    return None


def with_colab(notebook: nbformat.NotebookNode, repo: str, ref: str, path: str) -> nbformat.NotebookNode:
    """A copy of notebook with the badge for path in its title, the setup cell before `parameters`, GPU metadata."""
    notebook = copy.deepcopy(notebook)
    title = notebook.cells[0] if notebook.cells else None
    if title is None or title.cell_type != "markdown" or not title.source.startswith("# "):
        raise ValueError(f"{path}: the first cell must be the markdown title ('# ...') that carries the Colab badge")
    heading, newline, rest = BADGE_PATTERN.sub("", title.source).partition("\n")
    title.source = f"{heading}\n\n{badge(repo, ref, path)}" + (f"\n{rest}" if newline else "")
    cells = [cell for cell in notebook.cells if not is_bootstrap_cell(cell)]
    position = next((i for i, cell in enumerate(cells)
                     if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", [])), None)
    if position is None:
        raise ValueError(f"{path}: no code cell tagged 'parameters' to put the Colab setup cell before")
    setup = nbformat.v4.new_code_cell(bootstrap_source(repo, ref), id=BOOTSTRAP_TAG,  # form: Colab shows the title
                                      metadata={"tags": [BOOTSTRAP_TAG], "cellView": "form"})
    notebook.cells = [*cells[:position], setup, *cells[position:]]
    notebook.metadata["accelerator"] = GPU_METADATA["accelerator"]
    notebook.metadata.setdefault("colab", {}).update(copy.deepcopy(GPU_METADATA["colab"]))
    nbformat.validate(notebook)
    return notebook


def notebook_text(notebook: nbformat.NotebookNode) -> str:
    """A notebook as the project commits it (nbformat's JSON and a final newline)."""
    return nbformat.writes(notebook) + "\n"


def update_notebooks(folder: str | Path, repo: str, ref: str = DEFAULT_REF, write: bool = True) -> list[Path]:
    """Give every NN_*.ipynb in folder its Colab setup cell, badge and metadata; return those that changed."""
    folder = Path(folder)
    changed = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text(encoding="utf-8")
        relative = f"{folder.name}/{path.name}"
        updated = notebook_text(with_colab(nbformat.reads(text, as_version=4), repo, ref, relative))
        if updated != text:
            changed.append(path)
            if write:
                with atomic_open(path, "w", encoding="utf-8") as handle:
                    handle.write(updated)
    return changed


# --- the data on a Colab runtime ------------------------------------------------------------------------------

def prepare_data(drive_dir: str | Path | None = None, download: str | None = None) -> dict[str, str]:
    """On Colab: cd into notebooks/, find or fetch HAM10000 and the optional sets, set their variables; return those."""
    start = Path.cwd()
    notebooks = project_root() / "notebooks"
    if notebooks.is_dir():
        os.chdir(notebooks)
    drive_dir = drive_dir or os.environ.get(DRIVE_ENV) or None
    store = _drive_folder(Path(drive_dir)) if drive_dir else data_home()
    found: dict[str, str] = {}
    ham = _find_or_fetch_ham10000(store, _download_choice(download), [start, COLAB_CONTENT, Path.home() / ".kaggle"])
    if ham is not None:
        os.environ[HAM10000_ENV] = found[HAM10000_ENV] = str(ham)
    found.update(_optional_data(store))
    return found


def _download_choice(download: str | None) -> str | None:
    value = (download or os.environ.get(DOWNLOAD_ENV) or "").strip().lower()
    if value and value not in DOWNLOAD_CHOICES:
        raise ValueError(f"{DOWNLOAD_ENV} (or download=) must be one of {', '.join(DOWNLOAD_CHOICES)}; got {value!r}")
    return value or None


def _drive_folder(folder: Path) -> Path:
    """Mount Google Drive when folder is inside it, so that the data outlives the runtime; create folder."""
    if folder.is_relative_to(DRIVE_MOUNT):
        try:
            from google.colab import drive
        except ImportError as err:
            raise RuntimeError(f"${DRIVE_ENV} ({folder}) is in Google Drive, which only Colab can mount") from err
        drive.mount(str(DRIVE_MOUNT))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"data folder: {folder} (from ${DRIVE_ENV})")
    return folder


def _find_or_fetch_ham10000(store: Path, choice: str | None, kaggle_folders: list[Path]) -> Path | None:
    if os.environ.get(HAM10000_ENV):
        print(f"HAM10000: {os.environ[HAM10000_ENV]} (${HAM10000_ENV} was set already)")
        return Path(os.environ[HAM10000_ENV])
    target = store / "ham10000"
    if _holds_ham10000(target):
        print(f"HAM10000: {target} (already there, nothing to download)")
        return target
    if choice == "dataverse":
        return _download(target, "dataverse")
    note = ""
    if choice != "none":
        credentials, note = kaggle_credentials(kaggle_folders)
        if credentials is not None:
            os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"] = credentials
            return _download(target, "kaggle")
    print(no_data_message(store, note))
    return None


def _holds_ham10000(folder: Path) -> bool:
    """True when folder or one of its subfolders holds the metadata CSV (no deep search: Drive lists slowly)."""
    return (folder / METADATA_NAME).is_file() or any(folder.glob(f"*/{METADATA_NAME}"))


def _download(target: Path, source: str) -> Path | None:
    size = " (about 3 GB: several minutes)" if source == "dataverse" else ""
    print(f"downloading HAM10000 from {'the Harvard Dataverse' if source == 'dataverse' else 'Kaggle'} "
          f"into {target}{size} ...")
    try:
        path = download_ham10000(target, source=source)
    except DownloadError as err:
        print(no_data_message(target.parent, lead=f"The HAM10000 download from {source} failed: {err}\nSo"))
        return None
    print(f"HAM10000: {path}")
    return path


def kaggle_credentials(folders: list[Path]) -> tuple[tuple[str, str] | None, str]:
    """Kaggle (username, key) from the environment, Colab's secrets or a kaggle.json in folders; and why not, if none."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return (os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"]), ""
    credentials, note = _colab_secrets()
    if credentials is not None:
        print("Kaggle credentials: from Colab's secrets")
        return credentials, ""
    for path in (folder / "kaggle.json" for folder in dict.fromkeys(folders)):
        credentials = _read_kaggle_json(path)
        if credentials is not None:
            print(f"Kaggle credentials: from {path}")
            return credentials, ""
    return None, note


def _colab_secrets() -> tuple[tuple[str, str] | None, str]:
    try:
        from google.colab import userdata
    except ImportError:
        return None, ""
    values = []
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        try:  # userdata.get raises when the secret is missing or the notebook was not granted access to it
            values.append(userdata.get(name))
        except Exception as err:
            return None, f"Colab secret {name}: {type(err).__name__}{f' ({err})' if str(err) else ''}"
    return ((values[0], values[1]), "") if all(values) else (None, "Colab secrets KAGGLE_USERNAME/KAGGLE_KEY are empty")


def _read_kaggle_json(path: Path) -> tuple[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("username") and data.get("key"):
        return str(data["username"]), str(data["key"])
    return None


def no_data_message(store: Path, note: str = "", lead: str | None = None) -> str:
    """How to get HAM10000 on Colab, after lead (default: there is neither data in store nor Kaggle credentials)."""
    lead = lead or f"No HAM10000 in {store} and no Kaggle credentials{f' ({note})' if note else ''}:"
    return "\n".join([
        f"{lead} this notebook runs on the synthetic demo set. To use HAM10000:",
        "  - Kaggle: add the Colab secrets KAGGLE_USERNAME and KAGGLE_KEY (key icon in the left bar; give this notebook "
        "access), or upload your kaggle.json (kaggle.com > Settings > API > Create New Token) to /content; rerun this cell.",
        f"  - no account: run `%env {DOWNLOAD_ENV}=dataverse` in a new cell, then rerun this cell "
        "(the Harvard Dataverse, about 3 GB).",
        f"  - keep the data for the next runtime on Google Drive: `%env {DRIVE_ENV}={DRIVE_EXAMPLE}` first.",
    ])


def _optional_data(store: Path) -> dict[str, str]:
    """Point MELANOMA10K_DIR, DERMAMNIST_SPLIT_CSV, ISIC2018_TEST_DIR at store's copies; a hint for each one missing."""
    found = {}
    for env, path, notebook, dataset in ((MELANOMA10K_ENV, store / MELANOMA_FOLDER, "05", "melanoma10k"),
                                         (DERMAMNIST_ENV, store / DERMAMNIST_FILE, "04", "dermamnist-split"),
                                         (ISIC2018_TEST_ENV, store / ISIC2018_TEST_FOLDER, "07", "isic2018-test")):
        if os.environ.get(env):
            found[env] = os.environ[env]
        elif path.is_file() or (path.is_dir() and any(path.iterdir())):
            os.environ[env] = found[env] = str(path)
        else:
            print(f"{path.name} (optional, notebook {notebook}): not found; "
                  f"`!python -m helpers.data download --dataset {dataset} --target {path}` fetches it")
            continue
        print(f"{path.name}: {found[env]} (${env})")
    return found


# --- command line -----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`python -m helpers.colab notebooks [--ref REF] [--check]`: write (or check) the notebooks' Colab cells and badges."""
    parser = argparse.ArgumentParser(prog="python -m helpers.colab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    notebooks = commands.add_parser("notebooks", help="rewrite every notebook's Colab setup cell, badge and metadata")
    notebooks.add_argument("--ref", default=DEFAULT_REF, help="branch or tag the badges open and the cell clones")
    notebooks.add_argument("--repo", default=None, help=f"repository URL (default: ${REPO_ENV}, else pyproject.toml)")
    notebooks.add_argument("--folder", type=Path, default=project_root() / "notebooks")
    notebooks.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is out of date")
    args = parser.parse_args(argv)
    try:
        changed = update_notebooks(args.folder, args.repo or repository_url(), args.ref, write=not args.check)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    verb = "out of date" if args.check else "updated"
    print("\n".join(f"{verb}: {path}" for path in changed) or "all notebooks are up to date")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
