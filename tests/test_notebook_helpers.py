"""The library helpers that hold notebook plumbing (each with one job): cache timing, lesion index, melanoma10k loading,
duplicate report, calibration, training on each split, DermaMNIST runs, explaining one image, subgroups below overall."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import helpers  # noqa: E402
from helpers.course import plots  # noqa: E402
from helpers.course.config import setup  # noqa: E402
from helpers.data.dataset import SplitData, lesion_index, load_melanoma10k, time_cache  # noqa: E402
from helpers.data.duplicates import duplicate_report  # noqa: E402
from helpers.data.tensors import ImageData  # noqa: E402
from helpers.course.recipes.preprocessing import train_on_splits
from helpers.evaluation.splits import calibrate, explain_image  # noqa: E402
from helpers.models import build_classifier, save_checkpoint  # noqa: E402
from helpers.course.recipes.resnet_transfer import dermamnist_runs  # noqa: E402
from helpers.evaluation.screening import per_thousand_lesions  # noqa: E402
from helpers.evaluation.subgroups import groups_below  # noqa: E402


def _images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n small random RGB images (distinct) written as PNG files under folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        paths.append(folder / f"img{seed}_{i}.png")
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def _split_data(n: int = 24, size: int = 8, seed: int = 0) -> SplitData:
    """A tiny two-class SplitData (one image per lesion): bright images are class 1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = (rng.integers(0, 80, (n, size, size, 3)) + labels[:, None, None, None] * 150).astype(np.uint8)
    split = np.array(["train", "val", "test"])[np.arange(n) % 3]
    index = pd.DataFrame({"lesion_id": [f"l{i}" for i in range(n)], "split": split})
    parts = {p: ImageData.from_numpy(images[split == p], labels[split == p]) for p in ("train", "val", "test")}
    return SplitData(index, ["dark", "bright"], size, "lesion_disjoint", parts)


def test_time_cache_builds_once_then_maps_the_same_file(tmp_path: Path) -> None:
    paths = _images(tmp_path / "src", 3)
    first = time_cache(paths, 8, name="x", cache_dir=tmp_path / "cache")
    assert not first.existed and first.reused and first.images.shape == (3, 8, 8, 3) and first.path.exists()
    assert "built: 3 images" in first.report()
    again = time_cache(paths, 8, name="x", cache_dir=tmp_path / "cache")
    assert again.existed and again.path == first.path and "already there" in again.report()


def test_lesion_index_keeps_whole_lesions_within_max_images(synthetic_dir: Path) -> None:
    full = lesion_index(synthetic_dir)
    cut = lesion_index(synthetic_dir, 100, seed=0)
    assert len(full) == 140 and len(cut) < len(full)  # (at least 15 images per class are kept, so maybe above 100)
    assert cut.equals(lesion_index(synthetic_dir, 100, seed=0))
    kept = set(cut["lesion_id"])
    assert (full["lesion_id"].isin(kept).sum()) == len(cut)  # no lesion cut in half


def test_load_melanoma10k_reads_the_folder_given_and_splits_it(tmp_path: Path) -> None:
    for split, n in (("train", 20), ("test", 4)):
        for k, label in enumerate(("benign", "malignant")):
            _images(tmp_path / "mel" / split / label, n, seed=10 * k + n)
    melanoma = load_melanoma10k(tmp_path / "mel", 8, seed=0, progress=False)
    assert not melanoma.synthetic and melanoma.source.root == tmp_path / "mel"
    assert set(melanoma.data.index["split"]) == {"train", "val", "test", "official_test"}
    assert (melanoma.data.index["split"] == "official_test").sum() == 8
    assert "melanoma10k" in melanoma.description


def test_duplicate_report_counts_copies_and_marks_the_test_images_to_drop(tmp_path: Path) -> None:
    paths = _images(tmp_path, 6)
    copy = tmp_path / "copy.png"
    copy.write_bytes(paths[0].read_bytes())  # a byte-identical copy of a training image, in test
    index = pd.DataFrame({"path": [*paths, copy], "split": ["train"] * 4 + ["test"] * 3,
                          "folder_split": ["train"] * 4 + ["test"] * 3})
    report = duplicate_report(index, progress=False)
    assert report.identical_groups == 1 and report.identical_images == 2 and report.identical_groups_across_folders == 1
    assert report.clean["test"].tolist() == [True, True, False]
    assert report.to_dict()["per_split"]["test"]["byte-identical in train"] == 1
    assert "1 groups of byte-identical files (2 images)" in report.report()
    with pytest.raises(ValueError, match="folder_split"):
        duplicate_report(index.drop(columns="folder_split"), progress=False)


def test_calibrate_changes_no_prediction_and_reports_both_errors() -> None:
    torch.manual_seed(0)
    data = _split_data()
    model = build_classifier("reference_cnn", data.classes, data.image_size)
    result = calibrate(model, data, "test", n_boot=10)
    assert (result.raw.y_pred == result.calibrated.y_pred).all() and result.temperature > 0
    assert result.ece_before == pytest.approx(helpers.expected_calibration_error(result.raw.y_true, result.raw.probs))
    assert not np.allclose(result.raw.probs, result.calibrated.probs) or result.temperature == pytest.approx(1.0)


def test_train_on_splits_trains_one_model_per_split(synthetic_dir: Path, capsys: pytest.CaptureFixture) -> None:
    config = dataclasses.replace(setup("02_preprocessing", "smoke", data_dir=str(synthetic_dir), show=False, epochs=1,
                                       image_size=16), max_images=40)
    labels = {"image_level": "leaky", "lesion_disjoint": "fair"}
    runs = train_on_splits(config, config.arm("leakage"), labels, seed=0)
    assert list(runs.evaluations) == ["leaky", "fair"] and set(runs.fits) == set(runs.data) == {"leaky", "fair"}
    assert runs.data["leaky"].split_kind == "image_level" and len(runs.fits["fair"].history) == 1
    assert "leaky: 1 epochs" in capsys.readouterr().out


def test_dermamnist_runs_say_why_they_are_skipped(synthetic_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DERMAMNIST_SPLIT_CSV", raising=False)
    monkeypatch.setattr("helpers.data.source.data_home", lambda: tmp_path)  # no data/dermamnist_split.csv
    config = setup("04_resnet_transfer", "smoke", data_dir=str(synthetic_dir), show=False)
    assert "no split CSV" in dermamnist_runs(config, "a", "b", "resnet18").skipped_because
    csv = tmp_path / "split.csv"
    csv.write_text("image_id,dermamnist_split\n")
    skipped = dermamnist_runs(dataclasses.replace(config, data_source="synthetic"), "a", "b", "resnet18", split_csv=csv)
    assert skipped.models == {} and "synthetic" in skipped.skipped_because
    assert skipped.to_dict()["split"] == "dermamnist_official"
    assert "source" in skipped.table().columns


def test_explain_image_reloads_the_checkpoint_and_calibrates_on_validation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    data = _split_data(size=16)
    model = build_classifier("reference_cnn", data.classes, 16)
    checkpoint = save_checkpoint(model, tmp_path / "m.pt")
    explained = explain_image(checkpoint, _images(tmp_path, 1)[0], calibration=data)
    assert explained.image.shape == (16, 16, 3) and explained.cam.shape == (16, 16)
    assert list(explained.probabilities.index) == data.classes
    assert explained.probabilities.sum().round(6).tolist() == [1.0, 1.0]
    assert explained.predicted == explained.probabilities["probability"].idxmax()
    blank = tmp_path / "blank.tif"
    Image.new("I;16", (40, 30), 30000).save(blank)  # 16-bit and uniform: read by the predict reader, flagged
    warned = explain_image(checkpoint, blank, calibration=data)
    assert [w.split(" is ")[1].split(" (")[0] for w in warned.warnings] == ["nearly uniform"]


def test_groups_below_names_only_groups_with_enough_lesions_wholly_below() -> None:
    table = pd.DataFrame({"subgroup": ["sex", "sex", "site", "site"], "group": ["female", "male", "face", "back"],
                          "lesions": [40, 40, 10, 40], "bal. acc. 95% CI": ["0.40–0.55", "0.50–0.70", "0.10–0.20", "–"],
                          "flag": ["", "too few mel lesions for a sensitivity", "too few lesions to say anything", ""]}
                         ).set_index(["subgroup", "group"])
    assert groups_below(table, 0.6) == ["sex female"]
    assert groups_below(table, 0.8) == ["sex female", "sex male"]
    assert groups_below(table, 0.3) == []


def test_per_thousand_lesions_defaults_to_the_malignant_diagnoses() -> None:
    out = per_thousand_lesions(np.array(["a", "b", "c"]), np.array(["mel", "bcc", "nv"]), np.array([0.9, 0.1, 0.8]), 0.5)
    assert out["malignant_lesions"] == 2 and out["malignant_missed"] == 1 and out["benign_flagged"] == 1


def test_plots_of_augmentations_and_gradcam_cases(tmp_path: Path) -> None:
    figure = plots.augmentation_previews(_images(tmp_path, 1)[0], size=16, n=2, names=("hflip",), brightness=0.3)
    assert len(figure.axes) == 2 * 3  # two rows (hflip, all together) of the original and 2 copies
    data = _split_data(size=16)
    model = build_classifier("reference_cnn", data.classes, 16)
    evaluation = helpers.evaluate_split(model, data, "test", n_boot=5, balanced_decision=False)
    figure = plots.gradcam_cases(model, evaluation, data.test.images.cpu().numpy(), per_class=1)
    assert figure.axes and all(ax.get_title().startswith(("right", "wrong")) for ax in figure.axes if ax.get_title())
    plt.close("all")
    with pytest.raises(TypeError):
        plots.augmentation_previews(tmp_path / "none.png", not_a_setting=1)


def test_no_curated_name_loads_helpers_predict_which_would_shadow_the_function_predict() -> None:
    from helpers import _SOURCES
    from tests.test_architecture import import_graph

    graph, loaded, todo = import_graph(), set(), list(set(_SOURCES.values()))
    while todo:  # every module that loading the curated names imports
        module = todo.pop()
        if module not in loaded:
            loaded.add(module)
            todo += graph.get(module, set())
    assert "data.dataset" in loaded and "predict" not in loaded  # importing helpers.predict rebinds helpers.predict
