"""helpers.colab: the notebooks' Colab setup cell and badges, and the data on a faked Colab (no network).

A fake google.colab (secrets from $FAKE_COLAB_SECRETS, Drive mounts logged to $FAKE_COLAB_LOG) stands in for Colab:
in this process as modules in sys.modules, and on disk for the one end-to-end run of the real setup cell, which
clones a snapshot of this working tree over file:// and pip-installs it into a fresh virtual environment.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import tomllib
import types
import urllib.request
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from helpers import colab
from helpers.data import load_ham10000
from helpers.data.fetch import DownloadError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
VARIABLES = ("HAM10000_DIR", "MELANOMA10K_DIR", "DERMAMNIST_SPLIT_CSV", "ISIC2018_TEST_DIR", "KAGGLE_USERNAME",
             "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "SKIN_LESION_REPO", "SKIN_LESION_REF", "SKIN_LESION_DRIVE_DIR",
             "SKIN_LESION_DOWNLOAD", "FAKE_COLAB_SECRETS", "FAKE_COLAB_DENIED", "FAKE_COLAB_LOG")
SECRETS = {"KAGGLE_USERNAME": "student", "KAGGLE_KEY": "from-colab-secrets"}
METADATA_CSV = (b"lesion_id,image_id,dx,dx_type,age,sex,localization\n"
                b"HAM_0000001,ISIC_0000001,nv,follow_up,45.0,male,back\n"
                b"HAM_0000001,ISIC_0000002,nv,follow_up,45.0,male,back\n"
                b"HAM_0000002,ISIC_0000003,mel,histo,60.0,female,face\n")
# Requirements of the extras only (reports, lab, dev): the setup cell must not install them.
EXTRAS_ONLY = ("papermill", "nbconvert", "jupyterlab", "pytest", "nbval")

FAKE_COLAB = {
    "google/colab/__init__.py": '"""Fake google.colab: secrets from the environment, Drive in a folder."""\n',
    "google/colab/userdata.py": '''"""Fake Colab secrets: $FAKE_COLAB_SECRETS (JSON); $FAKE_COLAB_DENIED refuses access."""
import json
import os


class SecretNotFoundError(Exception):
    """No secret of that name."""


class NotebookAccessError(Exception):
    """The notebook was not given access to the secret."""


def get(key):
    """The secret's value, or Colab's exceptions."""
    if os.environ.get("FAKE_COLAB_DENIED"):
        raise NotebookAccessError(f"Notebook does not have access to secret {key}")
    secrets = json.loads(os.environ.get("FAKE_COLAB_SECRETS") or "{}")
    if key not in secrets:
        raise SecretNotFoundError(f"Secret {key} does not exist.")
    return secrets[key]
''',
    "google/colab/drive.py": '''"""Fake Google Drive: mount() logs to $FAKE_COLAB_LOG and creates MOUNTPOINT/MyDrive."""
import os


def mount(mountpoint, force_remount=False):
    """Record the mount and create the folder."""
    with open(os.environ["FAKE_COLAB_LOG"], "a") as log:
        log.write(f"mount {mountpoint}\\n")
    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)
''',
}


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (seed * 40 % 256, 90, 160)).save(buffer, format="JPEG")
    return buffer.getvalue()


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def committed_ref() -> str:
    refs = {colab.notebook_ref(read(path)) for path in NOTEBOOKS}
    assert len(refs) == 1 and None not in refs, f"the notebooks' setup cells clone different refs: {refs}"
    return refs.pop()


def bootstrap_cell(path: Path) -> str:
    return next(cell.source for cell in read(path).cells if colab.is_bootstrap_cell(cell))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No data, Kaggle, Colab or fork variables; whatever a test's code sets is undone afterwards."""
    for name in VARIABLES:
        monkeypatch.setenv(name, "")  # recorded, so a value the code sets later is undone too
        monkeypatch.delenv(name)


# --- the generated cells and badges -----------------------------------------------------------------------------

def test_repository_url_is_pyproject_unless_a_fork_overrides_it(clean_env: None,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert colab.repository_url() == declared
    assert colab.github_slug(declared) == "/".join(declared.rstrip("/").split("/")[-2:])
    monkeypatch.setenv("SKIN_LESION_REPO", "https://github.com/a-fork/course.git")
    assert colab.repository_url() == "https://github.com/a-fork/course.git"
    assert colab.github_slug(colab.repository_url()) == "a-fork/course"
    with pytest.raises(ValueError, match="SKIN_LESION_REPO"):
        colab.github_slug("file:///tmp/origin")


def test_committed_notebooks_are_what_the_generator_writes(clean_env: None) -> None:
    repo, ref = colab.repository_url(), committed_ref()
    stale = colab.update_notebooks(ROOT / "notebooks", repo, ref, write=False)
    assert not stale, f"run `python -m helpers.colab notebooks --ref {ref}`: {[p.name for p in stale]} are out of date"
    for path in NOTEBOOKS:
        notebook = read(path)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert colab.is_bootstrap_cell(code[0]) and "parameters" in code[1].metadata["tags"], path.name
        assert code[0].source == colab.bootstrap_source(repo, ref)
        assert sum(map(colab.is_bootstrap_cell, notebook.cells)) == 1
        title = notebook.cells[0].source
        assert title.startswith("# ") and title.count("Open In Colab") == 1
        assert colab.badge(repo, ref, f"notebooks/{path.name}") in title
        assert notebook.metadata["accelerator"] == "GPU"
        assert notebook.metadata["colab"]["gpuType"] == "T4"
        assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_readme_badges_open_each_notebook_at_the_notebooks_ref(clean_env: None) -> None:
    readme = (ROOT / "README.md").read_text()
    repo, ref = colab.repository_url(), committed_ref()
    rows = {cells[2].strip(" `"): line for line in readme.splitlines()
            if re.fullmatch(r" `\d\d_\w+` ", (cells := line.split("|") + ["", "", ""])[2])}
    assert sorted(rows) == [path.stem for path in NOTEBOOKS], "the README's notebook table lists other notebooks"
    for path in NOTEBOOKS:
        assert colab.badge(repo, ref, f"notebooks/{path.name}") in rows[path.stem], \
            f"README row {path.stem}: expected {colab.badge(repo, ref, f'notebooks/{path.name}')}"
    assert readme.count(colab.COLAB_GITHUB) == len(NOTEBOOKS)


def test_bootstrap_source_is_short_valid_python_with_its_repo_and_ref() -> None:
    source = colab.bootstrap_source("https://github.com/owner/repo", "v1.2")
    compile(source, "setup cell", "exec")
    lines = source.splitlines()
    assert len(lines) <= 14 and lines[0].startswith("#") and "does nothing outside Colab" in lines[0]
    assert '"SKIN_LESION_REPO", "https://github.com/owner/repo"' in source and '"SKIN_LESION_REF", "v1.2"' in source
    assert '"--editable", clone]' in source and "[" not in source.split('"--editable", ')[1].split("]")[0]
    with pytest.raises(ValueError, match="ref"):
        colab.bootstrap_source("https://github.com/owner/repo", 'main"; import os')


def test_generator_rewrites_ref_and_fork_and_is_a_fixed_point(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = Path(shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks"))
    fork = "https://github.com/a-fork/course"
    assert colab.main(["notebooks", "--folder", str(folder), "--ref", "v1.2", "--repo", fork]) == 0
    for path in NOTEBOOKS:
        original, updated = read(path), read(folder / path.name)
        assert colab.notebook_ref(updated) == "v1.2"
        assert colab.badge(fork, "v1.2", f"notebooks/{path.name}") in updated.cells[0].source
        assert updated.cells[0].source.count("Open In Colab") == 1
        assert [c for c in updated.cells[1:] if not colab.is_bootstrap_cell(c)] == \
               [c for c in original.cells[1:] if not colab.is_bootstrap_cell(c)], "other cells must stay as they are"
    capsys.readouterr()
    assert colab.main(["notebooks", "--folder", str(folder), "--ref", "v1.2", "--repo", fork, "--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert colab.main(["notebooks", "--folder", str(folder), "--repo", fork, "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before, "--check must not write"


def test_generator_names_the_notebook_without_title_or_parameters_cell() -> None:
    params = nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]})
    untitled = nbformat.v4.new_notebook(cells=[params])
    with pytest.raises(ValueError, match="notebooks/07_x.ipynb: the first cell"):
        colab.with_colab(untitled, "https://github.com/o/r", "main", "notebooks/07_x.ipynb")
    no_parameters = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 07"),
                                                    nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="notebooks/07_x.ipynb: no code cell tagged 'parameters'"):
        colab.with_colab(no_parameters, "https://github.com/o/r", "main", "notebooks/07_x.ipynb")


def test_dermamnist_variable_is_the_one_the_notebooks_read(clean_env: None, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.data.source import find_dermamnist_csv

    csv = tmp_path / colab.DERMAMNIST_FILE
    csv.write_text("image_id,dermamnist_split\n")
    monkeypatch.setenv(colab.DERMAMNIST_ENV, str(csv))  # what prepare_data sets on Colab
    assert find_dermamnist_csv() == csv


# --- the setup cell in this process -----------------------------------------------------------------------------

def test_setup_cell_does_nothing_outside_colab(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("google") and importlib.util.find_spec("google.colab"):
        pytest.skip("google.colab is importable here")

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"the cell ran {args} outside Colab")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    cwd, environ, path = os.getcwd(), dict(os.environ), list(sys.path)
    namespace: dict = {}
    exec(compile(bootstrap_cell(NOTEBOOKS[0]), "setup cell", "exec"), namespace)
    assert (os.getcwd(), dict(os.environ), sys.path) == (cwd, environ, path)
    assert "prepare_data" not in namespace


@dataclass
class FakeColab:
    """The faked Colab runtime of one test: its folders and the Drive mounts it saw."""

    project: Path
    content: Path
    mount_point: Path
    log: Path

    @property
    def mounts(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def install_fake_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the fake google.colab modules (the same sources as on disk) into sys.modules for this test."""
    if importlib.util.find_spec("google") is None:
        google = types.ModuleType("google")
        google.__path__ = []
        monkeypatch.setitem(sys.modules, "google", google)
    modules = {}
    for name in ("google.colab", "google.colab.userdata", "google.colab.drive"):
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=name == "google.colab")
        file = name.replace(".", "/") + ("/__init__.py" if name == "google.colab" else ".py")
        exec(compile(FAKE_COLAB[file], file, "exec"), module.__dict__)
        modules[name] = module
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(modules["google.colab"], "userdata", modules["google.colab.userdata"], raising=False)
    monkeypatch.setattr(modules["google.colab"], "drive", modules["google.colab.drive"], raising=False)


@pytest.fixture
def fake_colab(clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeColab:
    """A Colab runtime: cwd /content (a temporary folder), the project in another, no secrets, no terminal."""
    fake = FakeColab(tmp_path / "project", tmp_path / "content", tmp_path / "drive", tmp_path / "colab.log")
    (fake.project / "notebooks").mkdir(parents=True)
    fake.content.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("FAKE_COLAB_LOG", str(fake.log))
    monkeypatch.setattr(colab, "project_root", lambda: fake.project)
    monkeypatch.setattr(colab, "data_home", lambda: fake.project / "data")
    monkeypatch.setattr(colab, "COLAB_CONTENT", fake.content)
    monkeypatch.setattr(colab, "DRIVE_MOUNT", fake.mount_point)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.chdir(fake.content)
    install_fake_colab(monkeypatch)
    return fake


def recording_download(calls: list[tuple[Path, str]], fail: bool = False):
    """A stand-in for download_ham10000 that records (target, source) and leaves a metadata file."""
    def download(target: Path, source: str = "dataverse", **kwargs) -> Path:
        calls.append((Path(target), source))
        if fail:
            raise DownloadError("Kaggle refused the download (exit 1): check that your credentials are valid")
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / "HAM10000_metadata.csv").write_bytes(METADATA_CSV)
        return Path(target)
    return download


def test_setup_cell_on_colab_with_the_project_installed_only_prepares_data(fake_colab: FakeColab,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"the project is installed, yet the cell ran {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(colab, "prepare_data", lambda *args, **kwargs: calls.append(args))
    exec(compile(bootstrap_cell(NOTEBOOKS[0]), "setup cell", "exec"), {})
    assert calls == [()], "after a runtime restart the cell must still prepare the data"


# --- prepare_data on a faked Colab ------------------------------------------------------------------------------

def test_no_data_no_credentials_explains_and_leaves_the_synthetic_set(fake_colab: FakeColab,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    calls: list[tuple[Path, str]] = []
    monkeypatch.setattr(colab, "download_ham10000", recording_download(calls))
    assert colab.prepare_data() == {}
    out = capsys.readouterr().out
    assert Path.cwd() == fake_colab.project / "notebooks"
    assert "HAM10000_DIR" not in os.environ and not calls and not fake_colab.mounts
    for needed in ("synthetic demo set", "KAGGLE_USERNAME", "KAGGLE_KEY", "kaggle.json", "SecretNotFoundError",
                   "%env SKIN_LESION_DOWNLOAD=dataverse", "%env SKIN_LESION_DRIVE_DIR="):
        assert needed in out, f"the message lacks {needed!r}:\n{out}"
    assert "--dataset melanoma10k" in out and "--dataset dermamnist-split" in out and "--dataset isic2018-test" in out


@pytest.fixture
def kaggle_archive() -> str:
    """A local HTTP server with the HAM10000 Kaggle archive (three images); yields its base URL."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("HAM10000_metadata.csv", METADATA_CSV)
        for folder, image in (("part_1", 1), ("part_1", 2), ("part_2", 3)):
            archive.writestr(f"HAM10000_images_{folder}/ISIC_000000{image}.jpg", jpeg(image))
    body = buffer.getvalue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            found = self.path == "/skin-cancer-mnist-ham10000.zip"
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_kaggle_secrets_download_ham10000_and_point_the_variable_at_it(fake_colab: FakeColab, kaggle_archive: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import opendatasets

    seen: list[dict] = []

    def download_from_local_server(url: str, data_dir: str = ".", **kwargs) -> None:
        seen.append({"url": url, "credentials": json.loads(Path("kaggle.json").read_text())})
        slug = url.rstrip("/").split("/")[-1]
        with urllib.request.urlopen(f"{kaggle_archive}/{slug}.zip", timeout=10) as response:
            zipfile.ZipFile(io.BytesIO(response.read())).extractall(Path(data_dir) / slug)

    monkeypatch.setattr(opendatasets, "download", download_from_local_server)
    monkeypatch.setenv("FAKE_COLAB_SECRETS", json.dumps(SECRETS))
    found = colab.prepare_data()
    target = (fake_colab.project / "data" / "ham10000").resolve()
    assert seen == [{"url": "https://www.kaggle.com/datasets/kmader/skin-cancer-mnist-ham10000",
                     "credentials": {"username": "student", "key": "from-colab-secrets"}}]
    assert os.environ["HAM10000_DIR"] == found["HAM10000_DIR"] == str(target)
    assert sorted(load_ham10000(os.environ["HAM10000_DIR"], progress=False)["image_id"]) == [
        "ISIC_0000001", "ISIC_0000002", "ISIC_0000003"]
    assert not fake_colab.mounts


def test_secrets_not_granted_fall_back_to_an_uploaded_kaggle_json(fake_colab: FakeColab,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture) -> None:
    calls: list[tuple[Path, str]] = []
    monkeypatch.setattr(colab, "download_ham10000", recording_download(calls))
    monkeypatch.setenv("FAKE_COLAB_DENIED", "1")
    (fake_colab.content / "kaggle.json").write_text('{"username": "uploader", "key": "from-file"}')
    found = colab.prepare_data()
    assert calls == [(fake_colab.project / "data" / "ham10000", "kaggle")]
    assert (os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"]) == ("uploader", "from-file")
    assert found["HAM10000_DIR"] == str(fake_colab.project / "data" / "ham10000")
    assert f"from {fake_colab.content / 'kaggle.json'}" in capsys.readouterr().out


def test_drive_folder_with_the_data_mounts_and_downloads_nothing(fake_colab: FakeColab,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, str]] = []
    monkeypatch.setattr(colab, "download_ham10000", recording_download(calls))
    monkeypatch.setenv("FAKE_COLAB_SECRETS", json.dumps(SECRETS))
    drive = fake_colab.mount_point / "MyDrive" / "skin-lesion-data"
    (drive / "ham10000" / "HAM10000_images_part_1").mkdir(parents=True)
    (drive / "ham10000" / "HAM10000_metadata.csv").write_bytes(METADATA_CSV)
    (drive / "melanoma10k" / "train").mkdir(parents=True)
    (drive / "dermamnist_split.csv").write_text("image_id,dermamnist_split\n")
    (drive / "isic2018_test" / "images").mkdir(parents=True)
    (drive / "isic2018_test" / "labels.csv").write_text("image_id,dx\n")
    monkeypatch.setenv("SKIN_LESION_DRIVE_DIR", str(drive))
    found = colab.prepare_data()
    assert fake_colab.mounts == [f"mount {fake_colab.mount_point}"]
    assert not calls, "the data on Drive must not be downloaded again"
    assert found == {"HAM10000_DIR": str(drive / "ham10000"), "MELANOMA10K_DIR": str(drive / "melanoma10k"),
                     "DERMAMNIST_SPLIT_CSV": str(drive / "dermamnist_split.csv"),
                     "ISIC2018_TEST_DIR": str(drive / "isic2018_test")}
    assert all(os.environ[name] == value for name, value in found.items())
    assert Path.cwd() == fake_colab.project / "notebooks"


def test_dataverse_switch_downloads_into_the_empty_drive_folder(fake_colab: FakeColab, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    calls: list[tuple[Path, str]] = []
    monkeypatch.setattr(colab, "download_ham10000", recording_download(calls))
    drive = fake_colab.mount_point / "MyDrive" / "skin-lesion-data"
    monkeypatch.setenv("SKIN_LESION_DRIVE_DIR", str(drive))
    monkeypatch.setenv("SKIN_LESION_DOWNLOAD", "Dataverse")
    assert colab.prepare_data() == {"HAM10000_DIR": str(drive / "ham10000")}
    assert calls == [(drive / "ham10000", "dataverse")] and fake_colab.mounts == [f"mount {fake_colab.mount_point}"]
    out = capsys.readouterr().out
    assert "about 3 GB" in out and f"--target {drive / 'melanoma10k'}" in out


def test_failed_download_explains_and_leaves_the_synthetic_set(fake_colab: FakeColab, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture) -> None:
    calls: list[tuple[Path, str]] = []
    monkeypatch.setattr(colab, "download_ham10000", recording_download(calls, fail=True))
    monkeypatch.setenv("FAKE_COLAB_SECRETS", json.dumps(SECRETS))
    assert colab.prepare_data() == {}
    assert len(calls) == 1 and "HAM10000_DIR" not in os.environ
    out = capsys.readouterr().out
    assert "The HAM10000 download from kaggle failed: Kaggle refused" in out and "no Kaggle credentials" not in out
    assert "runs on the synthetic demo set" in out and "%env SKIN_LESION_DOWNLOAD=dataverse" in out


def test_data_variables_already_set_are_kept(fake_colab: FakeColab, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Path, str]] = []
    monkeypatch.setattr(colab, "download_ham10000", recording_download(calls))
    monkeypatch.setenv("HAM10000_DIR", str(tmp_path))
    monkeypatch.setenv("FAKE_COLAB_SECRETS", json.dumps(SECRETS))
    assert colab.prepare_data()["HAM10000_DIR"] == str(tmp_path) and not calls


def test_unknown_download_choice_names_the_variable(fake_colab: FakeColab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIN_LESION_DOWNLOAD", "ftp")
    with pytest.raises(ValueError, match="SKIN_LESION_DOWNLOAD .*kaggle, dataverse, none; got 'ftp'"):
        colab.prepare_data()


# --- the real setup cell, end to end ----------------------------------------------------------------------------

GIT_CONFIG = ["-c", "user.name=Colab test", "-c", "user.email=colab@test.invalid", "-c", "commit.gpgsign=false",
              "-c", "init.defaultBranch=main"]
GIT_ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
DRIVER = '''\
import importlib.util, json, os, sys
assert importlib.util.find_spec("helpers") is None, "helpers is importable before the setup cell runs"
assert importlib.util.find_spec("torch") is not None, "the heavy dependencies should be there, as on Colab"
exec(compile(open(sys.argv[1]).read(), "setup cell", "exec"), {"__name__": "__main__"})
import helpers
report = {"cwd": os.getcwd(), "helpers": helpers.__file__, "HAM10000_DIR": os.environ.get("HAM10000_DIR")}
open(sys.argv[2], "w").write(json.dumps(report))
'''


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *GIT_CONFIG, *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


def snapshot_repository(folder: Path, ref: str) -> str:
    """A git repository of this working tree (tracked and untracked-not-ignored files) whose branch ref adds a marker."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout: {listed.stderr.decode().strip()}")
    for name in filter(None, listed.stdout.decode().split("\0")):
        if Path(name).parts[0] not in (".venv", "data", "models") and (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    git("init", "-q", cwd=folder)
    git("add", "-A", cwd=folder)
    git("commit", "-q", "-m", "snapshot of the working tree", cwd=folder)
    git("checkout", "-q", "-b", ref, cwd=folder)
    (folder / "COLAB_TEST_REF").write_text(ref)
    git("add", "COLAB_TEST_REF", cwd=folder)
    git("commit", "-q", "-m", "the ref the setup cell must clone", cwd=folder)
    commit = git("rev-parse", "HEAD", cwd=folder)
    git("checkout", "-q", "main", cwd=folder)
    return commit


def hidden_from_colab(name: str) -> bool:
    """This project (its editable finder, .pth, dist-info) and the extras' tools, which a Colab runtime lacks."""
    stem = name.split("-")[0].lower()
    return (name.startswith("__editable__") or name.endswith(".pth") or stem in ("skin_lesion_course", "helpers")
            or (name.endswith(".dist-info") and stem in EXTRAS_ONLY))


def colab_like_python(folder: Path) -> tuple[Path, Path]:
    """A new venv that sees this environment's packages (torch, …) through a .pth, but neither helpers nor the extras."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    preinstalled = folder.parent / "preinstalled"
    preinstalled.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not hidden_from_colab(entry.name):
            (preinstalled / entry.name).symlink_to(entry)
    # A path line in a .pth adds the folder to sys.path without running the .pth files inside it.
    (site / "preinstalled.pth").write_text(f"{preinstalled}\n")
    return python, site


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed: the Colab setup cell clones with git")
def test_setup_cell_clones_installs_and_prepares_on_a_fresh_colab(clean_env: None, tmp_path: Path) -> None:
    ref = "colab-test"
    origin = tmp_path / "origin"
    origin.mkdir()
    commit = snapshot_repository(origin, ref)
    python, site = colab_like_python(tmp_path / "venv")
    fakes = tmp_path / "fakes"
    for name, source in FAKE_COLAB.items():
        (fakes / name).parent.mkdir(parents=True, exist_ok=True)
        (fakes / name).write_text(source)
    content, home = tmp_path / "content", tmp_path / "home"
    content.mkdir()
    home.mkdir()
    (tmp_path / "cell.py").write_text(bootstrap_cell(NOTEBOOKS[0]))
    (tmp_path / "driver.py").write_text(DRIVER)
    env = {name: value for name, value in GIT_ENV.items()
           if name not in VARIABLES and name not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PYTHONPATH=str(fakes), SKIN_LESION_REPO=origin.as_uri(), SKIN_LESION_REF=ref, HOME=str(home),
               PYTHONNOUSERSITE="1", PIP_NO_INPUT="1", FAKE_COLAB_LOG=str(tmp_path / "colab.log"))
    done = subprocess.run([python, tmp_path / "driver.py", tmp_path / "cell.py", tmp_path / "report.json"], cwd=content,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the setup cell failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    report = json.loads((tmp_path / "report.json").read_text())
    clone = content / "skin-lesion-course"
    assert git("rev-parse", "HEAD", cwd=clone) == commit and (clone / "COLAB_TEST_REF").read_text() == ref
    assert report["cwd"] == str(clone / "notebooks")
    assert report["helpers"] == str(clone / "helpers" / "__init__.py")
    assert report["HAM10000_DIR"] is None and "No HAM10000 in" in done.stdout and "KAGGLE_USERNAME" in done.stdout
    assert not (tmp_path / "colab.log").exists(), "no Drive folder was asked for"
    listed = subprocess.run([python, "-m", "pip", "list", "--path", str(site), "--format", "json"], env=env,
                            capture_output=True, text=True, check=True)
    installed = {p["name"]: p for p in json.loads(listed.stdout)}
    assert sorted(installed) == ["skin-lesion-course"], f"the cell installed more than the project: {sorted(installed)}"
    assert installed["skin-lesion-course"]["editable_project_location"] == str(clone)
