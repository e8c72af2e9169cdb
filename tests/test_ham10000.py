"""Loading and validating HAM10000 folders: layouts, tolerated quirks and clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from helpers.data import DX_CLASSES, DataError, check_ham10000, index_counts, load_ham10000
from helpers.data.ham10000 import METADATA_NAME


def metadata(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / METADATA_NAME, dtype=str, keep_default_na=False)


def write_metadata(root: Path, table: pd.DataFrame, line_terminator: str = "\n") -> None:
    table.to_csv(root / METADATA_NAME, index=False, lineterminator=line_terminator)


def test_loads_one_row_per_image_with_typed_columns(synthetic_dir: Path) -> None:
    index = load_ham10000(synthetic_dir)
    assert len(index) == len(metadata(synthetic_dir))
    assert list(index.columns[:3]) == ["lesion_id", "image_id", "path"]
    assert isinstance(index["dx"].dtype, pd.CategoricalDtype)
    assert list(index["dx"].cat.categories) == list(DX_CLASSES)
    assert str(index["age"].dtype) == "Float64"
    assert all(Path(p).is_absolute() and Path(p).exists() for p in index["path"])


def test_kaggle_layout_with_images_in_two_parts(ham_copy: Path) -> None:
    images = sorted((ham_copy / "images").iterdir())
    for part, chunk in (("HAM10000_images_part_1", images[::2]), ("HAM10000_images_part_2", images[1::2])):
        (ham_copy / part).mkdir()
        for image in chunk:
            shutil.move(image, ham_copy / part / image.name)
    (ham_copy / "images").rmdir()
    index = load_ham10000(ham_copy)
    assert index["path"].str.contains("part_1").sum() == len(images[::2])


def test_metadata_found_in_a_subfolder_and_images_flat(ham_copy: Path) -> None:
    (ham_copy / "meta").mkdir()
    shutil.move(ham_copy / METADATA_NAME, ham_copy / "meta" / METADATA_NAME)
    for image in (ham_copy / "images").iterdir():
        shutil.move(image, ham_copy / image.name)
    assert len(load_ham10000(ham_copy)) == len(metadata(ham_copy / "meta"))


def test_tolerates_crlf_empty_age_unknown_sex_and_extra_columns(ham_copy: Path) -> None:
    table = metadata(ham_copy)
    table.loc[0, "age"] = ""
    table.loc[1, "sex"] = "unknown"
    table["extra_notes"] = "x"
    write_metadata(ham_copy, table, line_terminator="\r\n")
    index = load_ham10000(ham_copy)
    assert pd.isna(index.loc[0, "age"])
    assert index.loc[1, "sex"] == "unknown"
    assert not index["image_id"].str.endswith("\r").any()


def test_no_metadata_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=METADATA_NAME):
        load_ham10000(tmp_path)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_ham10000(tmp_path / "nowhere")


def test_missing_column_is_named(ham_copy: Path) -> None:
    write_metadata(ham_copy, metadata(ham_copy).drop(columns=["lesion_id"]))
    with pytest.raises(DataError, match="lesion_id"):
        load_ham10000(ham_copy)


def test_unknown_dx_is_named_with_its_row(ham_copy: Path) -> None:
    table = metadata(ham_copy)
    table.loc[3, "dx"] = "melanoma"
    write_metadata(ham_copy, table)
    with pytest.raises(DataError, match=r"'melanoma'.*row 5"):
        load_ham10000(ham_copy)


def test_duplicated_image_ids(ham_copy: Path) -> None:
    table = metadata(ham_copy)
    write_metadata(ham_copy, pd.concat([table, table.iloc[[0]]]))
    with pytest.raises(DataError, match=f"duplicated image_id.*{table.loc[0, 'image_id']}"):
        load_ham10000(ham_copy)


def test_missing_images_counted_and_named(ham_copy: Path) -> None:
    table = metadata(ham_copy)
    for image_id in table["image_id"][:7]:
        (ham_copy / "images" / f"{image_id}.jpg").unlink()
    with pytest.raises(DataError, match=rf"^7 of {len(table)} images .*{table.loc[0, 'image_id']}.*…"):
        load_ham10000(ham_copy)


def test_truncated_jpeg_is_named(ham_copy: Path) -> None:
    victim = ham_copy / "images" / f"{metadata(ham_copy).loc[2, 'image_id']}.jpg"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])
    load_ham10000(ham_copy)  # cheap load does not decode
    with pytest.raises(DataError, match=victim.name):
        load_ham10000(ham_copy, verify_images=True, progress=False)


def test_rgba_and_grayscale_images_become_rgb(ham_copy: Path) -> None:
    from helpers.data.images import open_rgb

    ids = metadata(ham_copy)["image_id"][:2]
    rgba, gray = (ham_copy / "images" / f"{i}.jpg" for i in ids)
    Image.open(rgba).convert("RGBA").save(rgba.with_suffix(".png"))
    rgba.unlink()
    Image.open(gray).convert("L").save(gray)
    index = load_ham10000(ham_copy, verify_images=True, progress=False)
    for path in index["path"][:2]:
        assert open_rgb(path).mode == "RGB"


def test_check_collects_every_problem(ham_copy: Path) -> None:
    table = metadata(ham_copy)
    (ham_copy / "images" / f"{table.loc[0, 'image_id']}.jpg").unlink()
    (ham_copy / "images" / f"{table.loc[1, 'image_id']}.jpg").write_bytes(b"not a jpeg")
    index, problems, _ = check_ham10000(ham_copy, progress=False)
    assert index is None
    assert len(problems) == 2
    assert any("1 of" in p and table.loc[0, "image_id"] in p for p in problems)
    assert any(table.loc[1, "image_id"] in p and "cannot decode" in p for p in problems)


def test_index_counts(synthetic_dir: Path) -> None:
    index = load_ham10000(synthetic_dir)
    summary = index_counts(index)
    assert summary["images"] == len(index)
    assert summary["lesions"] == index["lesion_id"].nunique()
    assert sum(summary["per_class"].values()) == len(index)


def test_real_data_counts(real_dir: Path) -> None:
    summary = index_counts(load_ham10000(real_dir))
    assert summary["images"] == 10015
    assert summary["lesions"] == 7470
    assert summary["per_class"] == {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705, "vasc": 142}
