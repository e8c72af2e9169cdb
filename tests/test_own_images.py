"""Users' own images: every format Pillow reads decoded to the right pixels, unusable images flagged, and files
that are not images named, each case built from a copy of a real HAM10000 image in a temporary folder.

The outcomes and messages are cases of tests/test_reliability.py's table (keys "own_*")."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.data.folder import load_image_folder
from helpers.data.images import deep_to_uint8, image_suffixes, open_rgb, read_image
from helpers.data.labels import DX_CLASSES
from helpers.evaluate import main as evaluate_main
from helpers.models import build_classifier, save_checkpoint
from helpers.predict import main as predict_main
from test_reliability import check

ORIENTATION = 0x0112  # the EXIF tag
ROTATED_90 = 6  # "rotate 90° clockwise to display": Pillow's exif_transpose applies ROTATE_270


def as_16_bit(image: Image.Image) -> Image.Image:
    """An image as the 16-bit grayscale one an imaging tool exports: each 8-bit value x 257 (255 -> 65535)."""
    return Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)


def with_transparent_corner(image: Image.Image) -> Image.Image:
    """image as RGBA, opaque except its top-left quarter, which is fully transparent."""
    rgba = image.convert("RGBA")
    alpha = np.full(rgba.size[::-1], 255, np.uint8)
    alpha[: rgba.height // 2, : rgba.width // 2] = 0
    rgba.putalpha(Image.fromarray(alpha))
    return rgba


def save_exif_rotated(image: Image.Image, path: Path) -> None:
    """image stored turned 90° with the EXIF orientation that turns it back, as a phone camera writes it."""
    stored = image.transpose(Image.Transpose.ROTATE_90)
    exif = stored.getexif()
    exif[ORIENTATION] = ROTATED_90
    stored.save(path, quality=95, exif=exif.tobytes())


def rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


def gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L").convert("RGB"))


def white_corner(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image).copy()
    pixels[: pixels.shape[0] // 2, : pixels.shape[1] // 2] = 255
    return pixels


# file name: (how it is written from the 8-bit RGB original, the pixels it must decode to, mean absolute tolerance)
FORMATS: dict[str, tuple[Callable[[Image.Image, Path], None], Callable[[Image.Image], np.ndarray], float]] = {
    "bitmap.bmp": (lambda im, p: im.save(p), rgb, 0),
    "scan.tif": (lambda im, p: im.save(p), rgb, 0),
    "lossless.webp": (lambda im, p: im.save(p, lossless=True), rgb, 0),
    "photo.webp": (lambda im, p: im.save(p, quality=95), rgb, 3),
    "animation.gif": (lambda im, p: im.quantize(256).save(p), rgb, 8),  # a 256-colour palette
    "gray.png": (lambda im, p: im.convert("L").save(p), gray, 0),
    "gray16.png": (lambda im, p: as_16_bit(im).save(p), gray, 0),
    "scan16.tif": (lambda im, p: as_16_bit(im).save(p), gray, 0),
    "float.tif": (lambda im, p: Image.fromarray(np.asarray(im.convert("L"), np.float32) / 255).save(p), gray, 0.01),
    "transparent.png": (lambda im, p: with_transparent_corner(im).save(p), white_corner, 0),  # on white
    "print.jpg": (lambda im, p: im.convert("CMYK").save(p, quality=95), rgb, 3),
    "phone.jpg": (save_exif_rotated, rgb, 3),
}
UNUSABLE: dict[str, Callable[[Image.Image, Path], None]] = {
    "tiny.png": lambda im, p: im.resize((10, 8)).save(p),
    "blank.png": lambda im, p: Image.new("RGB", im.size, (181, 124, 110)).save(p),
    "letter.jpg": lambda im, p: p.write_text("Dear doctor, please find attached ..."),
    "scan.pdf": lambda im, p: im.save(p),
    "notes.txt": lambda im, p: p.write_text("left forearm, 2026-11-30"),
}


def own_images(original: Image.Image, folder: Path, names: list[str]) -> Path:
    """folder/ with original.png and the named cases written from the original; returns folder."""
    folder.mkdir(parents=True, exist_ok=True)
    original.save(folder / "original.png")
    for name in names:
        writer = FORMATS[name][0] if name in FORMATS else UNUSABLE[name]
        writer(original, folder / name)
    return folder


@pytest.fixture(scope="module")
def original(real_dir: Path) -> Image.Image:
    """A real HAM10000 image, decoded as 8-bit RGB."""
    with Image.open(sorted((real_dir / "images").glob("*.jpg"))[0]) as image:
        return image.convert("RGB")


@pytest.fixture(scope="module")
def every_case(original: Image.Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the original and every case, formats and unusable files."""
    return own_images(original, tmp_path_factory.mktemp("own") / "images", [*FORMATS, *UNUSABLE])


@pytest.fixture(scope="module")
def seven_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 7-class checkpoint at 32 px."""
    torch.manual_seed(0)
    return save_checkpoint(build_classifier("reference_cnn", list(DX_CLASSES), 32),
                           tmp_path_factory.mktemp("model") / "seven.pt")


def run_predict(checkpoint: Path, folder: Path, capsys: pytest.CaptureFixture) -> tuple[int, str, pd.DataFrame]:
    """predict on folder into folder/../preds.csv: (exit status, stdout and stderr, the CSV by file name)."""
    out = folder.parent / "preds.csv"
    code = predict_main(["--checkpoint", str(checkpoint), "--images", str(folder), "--out", str(out)])
    captured = capsys.readouterr()
    table = pd.read_csv(out, keep_default_na=False) if out.exists() else pd.DataFrame({"image": []})
    return code, captured.out + captured.err, table.set_index(table["image"].map(lambda p: Path(p).name))


def test_every_still_format_pillow_opens_is_an_image_suffix() -> None:
    suffixes = image_suffixes()
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"} <= suffixes
    assert not {".pdf", ".txt", ".csv"} & suffixes


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_decodes_to_the_8_bit_originals_pixels(name: str, every_case: Path, original: Image.Image) -> None:
    _, expected, tolerance = FORMATS[name]
    pixels = expected(original)
    decoded = np.asarray(open_rgb(every_case / name))
    assert decoded.shape == pixels.shape and decoded.dtype == np.uint8, (name, decoded.shape)
    error = np.abs(decoded.astype(float) - pixels).mean()
    assert error <= tolerance, (name, error)


def test_a_16_bit_image_is_scaled_by_its_range_not_clipped_to_white(every_case: Path) -> None:
    with Image.open(every_case / "gray16.png") as image:
        assert image.mode.startswith("I"), image.mode  # read as 16-bit: convert("RGB") would saturate it
        assert np.asarray(image.convert("RGB")).min() == 255
    decoded = np.asarray(open_rgb(every_case / "gray16.png"))
    assert decoded.std() > 10 and decoded.max() < 255


def test_deep_pixels_scale_by_the_smallest_bit_depth_that_holds_them() -> None:
    assert deep_to_uint8(np.array([[0, 2048, 4095]], np.uint16)).tolist() == [[0, 128, 255]]  # 12-bit
    assert deep_to_uint8(np.array([[0, 257 * 100, 65535]], np.uint16)).tolist() == [[0, 100, 255]]
    assert deep_to_uint8(np.array([[-1.0, 0.0, 3.0]], np.float32)).tolist() == [[0, 64, 255]]  # stretched


@pytest.mark.parametrize("name, reason", [("tiny.png", "is 10x8 pixels, under 0.5 of the model's 32-pixel input side"),
                                          ("blank.png", "is nearly uniform (pixel standard deviation 0.00 < 2)")])
def test_an_unusable_image_is_read_with_a_warning_naming_it(name: str, reason: str, every_case: Path) -> None:
    pixels, found = read_image(every_case / name, 32)
    assert pixels.shape == (32, 32, 3)
    assert found == [f"warning: {every_case / name} {reason}: the prediction is unreliable"]
    assert read_image(every_case / "original.png", 32)[1] == []


def test_predict_reads_every_format_from_the_originals_pixels(original: Image.Image, seven_classes: Path,
                                                              tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = own_images(original, tmp_path / "images", list(FORMATS))
    code, text, table = run_predict(seven_classes, folder, capsys)
    check("own_formats", code, text, tmp_path)
    assert set(table.index) == {"original.png", *FORMATS} and (table["error"] == "").all()
    columns = [f"p_{c}" for c in DX_CLASSES]
    for name in ("bitmap.bmp", "scan.tif", "lossless.webp", "phone.jpg"):  # lossless, or nearly: the same prediction
        assert np.allclose(table.loc[name, columns].astype(float), table.loc["original.png", columns].astype(float),
                           atol=0.02), name


@pytest.mark.parametrize("name, key", [("tiny.png", "own_tiny"), ("blank.png", "own_blank"),
                                       ("letter.jpg", "own_text_as_jpg"), ("scan.pdf", "own_not_images")])
def test_predict_flags_or_names_an_unusable_file(name: str, key: str, original: Image.Image, seven_classes: Path,
                                                 tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = own_images(original, tmp_path / "images", [name])
    code, text, table = run_predict(seven_classes, folder, capsys)
    check(key, code, text, tmp_path)
    assert table.loc["original.png", "error"] == "" and table.loc["original.png", "predicted"] in DX_CLASSES
    if name in ("tiny.png", "blank.png"):  # kept as a prediction, flagged
        assert table.loc[name, "error"].startswith("warning: ") and table.loc[name, "predicted"] in DX_CLASSES
    elif name == "letter.jpg":
        assert table.loc[name, "predicted"] == ""
    else:
        assert name not in table.index


def test_predict_on_every_case_at_once_says_what_it_did_with_each(every_case: Path, seven_classes: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    code, text, table = run_predict(seven_classes, every_case, capsys)
    assert code == 3
    assert set(table.index) == {"original.png", *FORMATS, "tiny.png", "blank.png", "letter.jpg"}
    n = len(table)
    assert (f"wrote {n} row(s) to {every_case.parent / 'preds.csv'}: {n - 1} predicted, 2 of them flagged unreliable "
            "(a warning in their error column), 1 skipped (see their error column), 2 files skipped: not images — "
            "notes.txt, scan.pdf; exit status 3") in text


def test_evaluate_counts_what_is_not_an_image_and_what_it_flagged(every_case: Path, seven_classes: Path,
                                                                  tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ids = sorted(p.stem for p in every_case.iterdir() if p.suffix in image_suffixes())
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"image_id": ids, "dx": [("nv", "mel")[i % 2] for i in range(len(ids))]}).to_csv(labels, index=False)
    out = tmp_path / "metrics.json"
    code = evaluate_main(["--checkpoint", str(seven_classes), "--images", str(every_case), "--labels", str(labels),
                          "--out", str(out), "--n-boot", "20"])
    err = capsys.readouterr().err
    check("own_evaluate_not_images", code, err)
    check("own_evaluate_flagged", code, err, every_case.parent)
    result = json.loads(out.read_text())
    assert result["excluded"]["not images"] == {"count": 2, "examples": ["notes.txt", "scan.pdf"]}
    assert result["excluded"]["unreadable files"]["count"] == 1
    assert result["flagged"]["count"] == 2 and result["n_images"] == len(ids) - 1


def test_a_labelled_folder_names_the_files_that_are_not_images(original: Image.Image, tmp_path: Path) -> None:
    for split in ("train", "test"):
        for label in ("benign", "malignant"):
            own_images(original, tmp_path / "folder" / split / label, ["notes.txt"] if split == "test" else [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = load_image_folder(tmp_path / "folder")
    assert len(rows) == 4
    assert len(caught) == 2
    check("own_folder_not_images", caught[0], str(caught[0].message), tmp_path)
