"""Notebook 05's tools: the melanoma10k folder (resolution, synthetic stand-in, split), duplicate hashing,
outcomes per 1,000 lesions, and the predict CLI on an EfficientNet-Lite0 binary checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.data import BINARY_CLASSES, DataError, MALIGNANT_DX, load_image_folder, load_ham10000
from helpers.data import melanoma as melanoma_module
from helpers.data.dataset import load_folder_split_data
from helpers.data.duplicates import (dhash, duplicate_summary, duplicates_in_reference, hash_images, identical_groups,
                                     nearest)
from helpers.data.melanoma import (describe_melanoma, folder_split, make_synthetic_folder, resolve_melanoma_source,
                                   subsample_folder)
from helpers.training.inference import predict
from helpers.models import build_classifier, save_checkpoint
from helpers.predict import main as predict_main
from helpers.evaluation.screening import lesion_scores, per_thousand_lesions


@pytest.fixture(scope="module")
def folder(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic stand-in of melanoma10k built from the session's synthetic HAM set (3 planted copies)."""
    return make_synthetic_folder(tmp_path_factory.mktemp("mel") / "melanoma10k", synthetic_dir)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Brute-force distances between packed hashes, for checking the matrix-product version."""
    return np.unpackbits(a[:, None, :] ^ b[None, :, :], axis=2).sum(axis=2)


def test_synthetic_folder_layout_labels_and_planted_copies(folder: Path, synthetic_dir: Path) -> None:
    table = load_image_folder(folder)
    ham = load_ham10000(synthetic_dir).set_index("image_id")
    original = table["image_id"].str.replace("_copy", "")
    expected = ham.loc[original, "dx"].astype(str).isin(MALIGNANT_DX).map({True: "malignant", False: "benign"})
    assert (table["label"].astype(str).to_numpy() == expected.to_numpy()).all()
    copies = table[table["image_id"].str.endswith("_copy")]
    assert len(copies) == 3 and (copies["folder_split"] == "test").all()
    lesions = ham.loc[original, "lesion_id"].to_numpy()
    train_lesions = set(lesions[(table["folder_split"] == "train").to_numpy()])
    test_only = ~table["image_id"].str.endswith("_copy") & (table["folder_split"] == "test")
    assert not train_lesions & set(lesions[test_only.to_numpy()])  # lesion-disjoint apart from the planted copies
    assert set(table["folder_split"]) == {"train", "test"} and 0.1 < (table["folder_split"] == "test").mean() < 0.3


def test_synthetic_folder_is_reused_and_never_replaces_foreign_data(folder: Path, synthetic_dir: Path, tmp_path: Path) -> None:
    stamp = (folder / "synthetic_folder.json").stat().st_mtime_ns
    assert make_synthetic_folder(folder, synthetic_dir) == folder
    assert (folder / "synthetic_folder.json").stat().st_mtime_ns == stamp
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="refusing to replace"):
        make_synthetic_folder(foreign, synthetic_dir)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_resolution_order(folder: Path, synthetic_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(melanoma_module, "data_home", lambda: tmp_path / "data")
    monkeypatch.setattr(melanoma_module, "make_synthetic", lambda *args, **kwargs: synthetic_dir)
    monkeypatch.setenv("MELANOMA10K_DIR", str(folder))
    assert resolve_melanoma_source(folder).origin == "melanoma_dir parameter"
    source = resolve_melanoma_source()
    assert (source.kind, source.origin, source.root) == ("melanoma10k", "$MELANOMA10K_DIR", folder.resolve())
    assert describe_melanoma(source).startswith("DATA: melanoma10k")
    monkeypatch.delenv("MELANOMA10K_DIR")
    default = tmp_path / "data" / "melanoma10k"
    default.mkdir(parents=True)
    (default / "train").mkdir()
    assert resolve_melanoma_source().root == default
    (default / "train").rmdir()
    source = resolve_melanoma_source()
    assert source.synthetic and source.root == tmp_path / "data" / "synthetic_melanoma10k"
    assert len(load_image_folder(source.root)) == len(load_ham10000(synthetic_dir)) + 3
    banner = describe_melanoma(source)
    assert "SYNTHETIC" in banner and "MELANOMA10K_DIR" in banner


def test_bad_melanoma_paths_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="melanoma_dir"):
        resolve_melanoma_source(tmp_path / "missing")
    monkeypatch.setenv("MELANOMA10K_DIR", str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"\$MELANOMA10K_DIR"):
        resolve_melanoma_source()


def test_folder_split_is_stratified_seeded_and_keeps_the_official_test(folder: Path) -> None:
    table = load_image_folder(folder)
    split = folder_split(table, (0.8, 0.1, 0.1), seed=3)
    assert (split[table["folder_split"] == "test"] == "official_test").all()
    for label, rows in table[table["folder_split"] == "train"].groupby("label", observed=True):
        counts = split[rows.index].value_counts()
        assert counts["val"] == round(0.1 * len(rows)) and counts["test"] == round(0.1 * len(rows)), label
    assert split.equals(folder_split(table, (0.8, 0.1, 0.1), seed=3))
    assert not split.equals(folder_split(table, (0.8, 0.1, 0.1), seed=4))
    with pytest.raises(ValueError, match="fractions"):
        folder_split(table, (0.9, 0.1, 0.1))


def test_subsample_keeps_every_group(folder: Path) -> None:
    table = load_image_folder(folder)
    small = subsample_folder(table, 40, seed=0)
    assert 30 <= len(small) <= 50 and small["relpath"].is_unique
    assert small.groupby(["folder_split", "label"], observed=True).size().min() >= 4
    assert subsample_folder(table, None) is table


def test_folder_split_data_parts_follow_the_index(folder: Path, tmp_path: Path) -> None:
    data = load_folder_split_data(folder, 16, cache_dir=tmp_path, device="cpu", progress=False)
    assert set(data.parts) == {"train", "val", "test", "official_test"}
    assert sum(len(part) for part in data.parts.values()) == len(data.index)
    assert data.index["lesion_id"].is_unique  # no lesion ids: each image is its own group
    for name, part in data.parts.items():
        rows = data.rows(name)
        assert rows["label"].cat.codes.tolist() == part.labels.tolist()
    assert data.classes == list(BINARY_CLASSES) and data.train.images.shape[1:] == (16, 16, 3)


def pattern(seed: int, size: tuple[int, int] = (200, 150)) -> Image.Image:
    """A smooth random colour pattern: photo-like gradients that dHash captures robustly."""
    cells = np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize(size, Image.Resampling.BICUBIC)


def test_dhash_survives_reencoding_and_separates_different_images(tmp_path: Path) -> None:
    original = pattern(0)
    original.resize((300, 225)).save(tmp_path / "bigger.jpg", quality=70)
    with Image.open(tmp_path / "bigger.jpg") as image:
        copy = dhash(image)
    assert dhash(original).shape == (256,) and dhash(original).dtype == bool
    assert (dhash(original) != copy).sum() <= 3
    others = [(dhash(original) != dhash(pattern(seed))).sum() for seed in range(1, 11)]
    assert min(others) > 60  # unrelated images differ in about half of the 256 bits


def test_nearest_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    query, reference = rng.integers(0, 256, (37, 32), dtype=np.uint8), rng.integers(0, 256, (53, 32), dtype=np.uint8)
    reference[5] = query[2]
    distance, index = nearest(query, reference, chunk=8)
    brute = hamming(query, reference)
    assert (distance == brute.min(axis=1)).all() and (brute[np.arange(37), index] == distance).all()
    assert distance[2] == 0 and index[2] == 5
    self_distance, self_index = nearest(query, query, exclude_same_index=True, chunk=10)
    brute = hamming(query, query) + np.diag(np.full(37, 999))
    assert (self_distance == brute.min(axis=1)).all() and (self_index != np.arange(37)).all()


def test_identical_groups() -> None:
    groups = identical_groups(["a", "b", "a", "c", "b", "a"])
    assert sorted(map(list, groups)) == [[0, 2, 5], [1, 4]]
    assert identical_groups(["x", "y"]) == []


def test_duplicates_found_between_splits(tmp_path: Path) -> None:
    paths = []
    for seed in range(6):  # train: six unrelated images
        pattern(seed).save(tmp_path / f"train{seed}.png")
        paths.append(tmp_path / f"train{seed}.png")
    (tmp_path / "copy.png").write_bytes(paths[0].read_bytes())  # test: a byte-identical copy,
    pattern(1).resize((100, 75)).save(tmp_path / "near.jpg", quality=70)  # a rescaled re-encoded copy,
    pattern(7).save(tmp_path / "new1.png")  # and two new images
    pattern(8).save(tmp_path / "new2.png")
    paths += [tmp_path / name for name in ("copy.png", "near.jpg", "new1.png", "new2.png")]
    split = pd.Series(["train"] * 6 + ["test"] * 4)
    hashes = hash_images(paths, workers=2, progress=False)
    found = duplicates_in_reference(hashes, (split == "test").to_numpy(), (split == "train").to_numpy())
    assert found["identical"].tolist() == [True, False, False, False]
    assert found["near_duplicate"].tolist() == [True, True, False, False]
    assert found["nearest"].tolist()[:2] == [0, 1] and found["distance"].iloc[0] == 0
    summary = duplicate_summary(hashes, split)
    assert summary.loc["test"].tolist() == [4, 1, 2]


def test_planted_copies_are_found_in_the_synthetic_folder(folder: Path) -> None:
    table = load_image_folder(folder)
    hashes = hash_images(table["path"].tolist(), progress=False)
    assert sum(table["folder_split"].iloc[g].nunique() == 2 for g in identical_groups(hashes.digests)) == 3
    assert duplicate_summary(hashes, table["folder_split"]).loc["test", "byte-identical in train"] == 3


def test_per_thousand_lesions_counts_lesions_not_images() -> None:
    groups = np.array(["m1", "m1", "m2", "b1", "b2", "b2", "c1", "b3"])
    dx = np.array(["mel", "mel", "mel", "nv", "bkl", "bkl", "bcc", "nv"])
    p = np.array([0.9, 0.2, 0.1, 0.1, 0.7, 0.5, 0.6, 0.3])
    lesions = lesion_scores(groups, dx, p)
    assert lesions.loc["m1", "p"] == pytest.approx(0.55) and lesions.loc["b2", "images"] == 2
    outcome = per_thousand_lesions(groups, dx, p, threshold=0.5, malignant=MALIGNANT_DX)
    assert outcome["lesions"] == 6 and outcome["mel_lesions"] == 2 and outcome["mel_missed"] == 1  # m2 (0.1)
    assert outcome["malignant_missed"] == 1 and outcome["benign_flagged"] == 1  # b2 (0.6)
    assert outcome["mel_missed_per_1000"] == pytest.approx(1000 / 6, abs=0.05)
    with pytest.raises(ValueError, match="same dx"):
        lesion_scores(np.array(["a", "a"]), np.array(["mel", "nv"]), np.array([0.1, 0.2]))


def test_predict_cli_on_an_efficientnet_binary_checkpoint(folder: Path, tmp_path: Path) -> None:
    model = build_classifier("efficientnet_lite0", list(BINARY_CLASSES), 32, pretrained=True).eval()
    checkpoint = save_checkpoint(model, tmp_path / "models" / "05.pt")
    out = tmp_path / "preds.csv"
    assert predict_main(["--checkpoint", str(checkpoint), "--images", str(folder / "test"), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    files = sorted(p for p in (folder / "test").rglob("*.jpg"))
    assert list(table.columns) == ["image", "p_benign", "p_malignant", "predicted", "error"] and len(table) == len(files)
    assert table["error"].isna().all()  # every image was read
    np.testing.assert_allclose(table[["p_benign", "p_malignant"]].sum(axis=1), 1.0, atol=1e-5)
    from helpers.data.images import load_resized

    expected = predict(model, np.stack([load_resized(p, 32) for p in files]))
    np.testing.assert_allclose(table[["p_benign", "p_malignant"]].to_numpy(), expected, atol=1e-4)
