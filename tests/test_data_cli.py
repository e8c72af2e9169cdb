"""`python -m helpers.data`: check, split and synth from the command line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers.data.__main__ import main


def test_check_valid_folder(synthetic_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", str(synthetic_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "images" in out and "lesions" in out and "nv" in out and out.strip().endswith("OK")


def test_check_invalid_folder_exits_nonzero(ham_copy: Path, capsys: pytest.CaptureFixture) -> None:
    table = pd.read_csv(ham_copy / "HAM10000_metadata.csv")
    (ham_copy / "images" / f"{table.loc[0, 'image_id']}.jpg").unlink()
    assert main(["check", str(ham_copy), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert table.loc[0, "image_id"] in captured.err and "INVALID" in captured.out


def test_split_writes_lesion_disjoint_csv(synthetic_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "split.csv"
    assert main(["split", str(synthetic_dir), "--seed", "2", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert {"image_id", "lesion_id", "dx", "split"} <= set(table.columns)
    assert table.groupby("lesion_id")["split"].nunique().max() == 1


def test_synth_then_check_in_a_subprocess(tmp_path: Path) -> None:
    run = lambda *args: subprocess.run([sys.executable, "-m", "helpers.data", *args], capture_output=True, text=True)
    made = run("synth", str(tmp_path / "syn"), "--n-images", "70")
    assert made.returncode == 0, made.stderr
    checked = run("check", str(tmp_path / "syn"), "--quiet")
    assert checked.returncode == 0 and "70 images" in checked.stdout


def test_error_on_missing_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["split", str(tmp_path / "nope"), "--out", str(tmp_path / "s.csv")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_check_real_data(real_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", str(real_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "10,015 images, 7,470 lesions" in out and "nv      6,705" in out


def test_links_finds_a_lesion_filed_under_two_lesion_ids(synthetic_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "ham"
    (folder / "images").mkdir(parents=True)
    metadata = pd.read_csv(synthetic_dir / "HAM10000_metadata.csv").head(12)
    copy = metadata.iloc[0].copy()  # the first image again, filed under a lesion id of its own
    copy["image_id"], copy["lesion_id"] = "SYN_COPY", "SYNL_COPY"
    pd.concat([metadata, copy.to_frame().T]).to_csv(folder / "HAM10000_metadata.csv", index=False)
    for image_id in metadata["image_id"]:
        source = next((synthetic_dir / "images").glob(f"{image_id}.*"))
        shutil.copy(source, folder / "images" / source.name)
    first = next((synthetic_dir / "images").glob(f"{metadata['image_id'].iloc[0]}.*"))
    shutil.copy(first, folder / "images" / f"SYN_COPY{first.suffix}")
    out = tmp_path / "links.csv"
    assert main(["links", str(folder), "--out", str(out), "--quiet"]) == 0
    pairs = pd.read_csv(out)
    assert {"SYNL_COPY", metadata["lesion_id"].iloc[0]} in [set(p) for p in pairs[["lesion_id_a", "lesion_id_b"]].values]
    assert pairs["similarity"].max() > 0.999 and "linked pair(s)" in capsys.readouterr().out
