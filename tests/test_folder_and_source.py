"""Image-folder data sets and the data resolution order."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from helpers.data import DataError, describe, load_image_folder, resolve_data_source, resolve_path
from helpers.data import source as source_module


def make_folder(root: Path, counts: dict[tuple[str, str], int]) -> Path:
    for (split, label), n in counts.items():
        (root / split / label).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 10, 0, 0)).save(root / split / label / f"{label}_{i}.jpg")
    return root


def test_image_folder_layout(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mel", {("train", "benign"): 3, ("train", "malignant"): 2, ("test", "benign"): 1, ("test", "malignant"): 1})
    table = load_image_folder(root)
    assert len(table) == 7
    assert table.groupby(["folder_split", "label"], observed=True).size().to_dict() == {
        ("test", "benign"): 1, ("test", "malignant"): 1, ("train", "benign"): 3, ("train", "malignant"): 2}
    assert table.loc[0, "relpath"].startswith("train/benign/")
    assert list(table["label"].cat.categories) == ["benign", "malignant"]


def test_image_folder_missing_class_folder_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "mel", {("train", "benign"): 1, ("train", "malignant"): 1, ("test", "benign"): 1})
    with pytest.raises(DataError, match=r"test/malignant"):
        load_image_folder(root)


def test_resolution_order(tmp_path: Path, synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source_module, "data_home", lambda: tmp_path / "data")
    monkeypatch.setenv("HAM10000_DIR", str(synthetic_dir))
    assert resolve_data_source(synthetic_dir).origin == "data_dir parameter"
    assert resolve_data_source().origin == "$HAM10000_DIR"
    monkeypatch.delenv("HAM10000_DIR")
    default = tmp_path / "data" / "ham10000"
    default.mkdir(parents=True)
    (default / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\n")
    assert resolve_data_source().root == default
    (default / "HAM10000_metadata.csv").unlink()
    (default / "partial.zip.part").write_text("")
    with pytest.raises(DataError, match="no HAM10000_metadata.csv"):
        resolve_data_source()
    (default / "partial.zip.part").unlink()
    source = resolve_data_source(synthetic_images=70)
    assert source.synthetic and (source.root / "HAM10000_metadata.csv").exists()
    assert "SYNTHETIC" in describe(source)
    monkeypatch.setenv("HAM10000_DIR", str(synthetic_dir))  # real data configured: "synthetic" still asks for the demo
    asked = resolve_data_source("synthetic", synthetic_images=70)
    assert asked.synthetic and asked.root == source.root and "data_dir='synthetic'" in asked.origin


def test_bad_data_dir_and_env_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="data_dir"):
        resolve_data_source(tmp_path / "missing")
    monkeypatch.setenv("HAM10000_DIR", str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"\$HAM10000_DIR"):
        resolve_data_source()


def test_resolve_path_takes_the_parameter_then_the_variable_then_the_default(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    given, from_env, default = (tmp_path / name for name in ("given", "env", "default"))
    for folder in (given, from_env):
        folder.mkdir()
    monkeypatch.setenv("PROBE_DIR", str(from_env))
    assert resolve_path(given, "PROBE_DIR", default, "probe_dir") == (given.resolve(), "probe_dir parameter")
    assert resolve_path(None, "PROBE_DIR", default, "probe_dir") == (from_env.resolve(), "$PROBE_DIR")
    monkeypatch.delenv("PROBE_DIR")
    assert resolve_path(None, "PROBE_DIR", default, "probe_dir") is None  # no default folder either
    default.mkdir()
    assert resolve_path(None, "PROBE_DIR", default, "probe_dir") == (default, "data/default/")
    assert resolve_path(None, "PROBE_DIR", default, "probe_dir", usable=lambda d: any(d.iterdir())) is None
    with pytest.raises(DataError, match=r"^probe_dir points to .*missing, which is not an existing folder$"):
        resolve_path(tmp_path / "missing", "PROBE_DIR", default, "probe_dir")
    monkeypatch.setenv("PROBE_CSV", str(given))  # a folder where a file is wanted
    with pytest.raises(DataError, match=r"^\$PROBE_CSV points to .*given, which is not an existing file$"):
        resolve_path(None, "PROBE_CSV", tmp_path / "split.csv", "probe_csv", kind="file")
