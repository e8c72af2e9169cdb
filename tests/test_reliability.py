"""Broken inputs, tried as a new user would: each is refused with one line naming the culprit, and no earlier file is lost.

Every test checks one `Case` of CASES: its outcome (exit status or exception) and its message, which
the table of docs/reliability.md lists. The last test renders the table from CASES and compares it
with that page; to regenerate it after changing a case:

    RELIABILITY_UPDATE=1 .venv/bin/python -m pytest tests/test_reliability.py -k reliability_table -p no:cacheprovider
"""

from __future__ import annotations

import ast
import io
import json
import os
import warnings
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.core import cli
from helpers.course import scaling
from helpers.scaling import main as scaling_main
from helpers.training.augment import AugmentConfig
from helpers.course.config import resolve_config
from helpers.data.__main__ import main as data_main
from helpers.core.errors import CheckpointError
from helpers.core.io import atomic_open, temporaries
from helpers.models import CHECKPOINT_FORMAT, build_classifier, load_checkpoint, save_checkpoint
from helpers.predict import main as predict_main
from helpers.course.recipes import recipe
from helpers.reports import main as reports_main
from helpers.training.loop import TrainConfig
from helpers.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability.md"  # the page whose table lists CASES
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"
UPDATE_ENV = "RELIABILITY_UPDATE"
CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


# ---------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One bad input: what it is, how it is tried, the outcome and the message ({dir}: the test's folder)."""

    bad_input: str
    tried: str
    outcome: str  # "exit N", "exit N, warning" or an exception name
    message: str


CASES: dict[str, Case] = {}


def case(key: str, bad_input: str, tried: str, outcome: str, message: str) -> Case:
    """Register a case for the reliability table (docs/reliability.md) and return it."""
    CASES[key] = Case(bad_input, tried, outcome, message)
    return CASES[key]


PREDICT = "python -m helpers.predict --checkpoint {ckpt} --images DIR --out preds.csv"
case("predict_unreadable", "`predict`: every image unreadable (an existing --out)", PREDICT.format(ckpt="model.pt"),
     "exit 1", "error: none of the 2 image file(s) in --images {dir}/images could be read; {dir}/preds.csv kept as it was")
case("predict_empty", "`predict`: an empty folder (an existing --out)", PREDICT.format(ckpt="model.pt"), "exit 1",
     "error: --images {dir}/images holds no image files (no format Pillow reads); {dir}/preds.csv kept as it was")
case("predict_some", "`predict`: some images unreadable", PREDICT.format(ckpt="model.pt"), "exit 3",
     "skipped: cannot decode image {dir}/images/broken.jpg: cannot identify image file")
EVALUATE = "python -m helpers.evaluate --checkpoint seven.pt --images DIR --labels labels.csv --out metrics.json"
case("evaluate_no_dx", "`evaluate`: a labels CSV without a dx column (an existing --out)", EVALUATE, "exit 1",
     "error: --labels {dir}/labels.csv has no dx column (nor the one-hot columns MEL, NV, BCC, AKIEC, BKL, DF, VASC); "
     "found image_id, diagnosis; {dir}/metrics.json kept as it was")
case("evaluate_none", "`evaluate`: no label matches an image (an existing --out)", EVALUATE, "exit 1",
     "error: no image could be scored: 2 images without labels, 1 labels without images; {dir}/metrics.json kept as it was")
case("evaluate_some", "`evaluate`: an image without a label", EVALUATE, "exit 3",
     "excluded: 1 images without labels, e.g. ")
OWN = "python -m helpers.predict --checkpoint seven.pt --images DIR/images --out preds.csv"
case("own_formats", "`predict`: BMP, TIFF (8-bit, 16-bit, float), WebP, GIF, grayscale, 16-bit and RGBA PNG, CMYK and "
     "EXIF-rotated JPEG files (tests/test_own_images.py)", OWN, "exit 0",
     "wrote 13 row(s) to {dir}/preds.csv: 13 predicted")
case("own_tiny", "`predict`: an image under half the model's input side", OWN, "exit 3",
     "warning: {dir}/images/tiny.png is 10x8 pixels, under 0.5 of the model's 32-pixel input side: the prediction "
     "is unreliable")
case("own_blank", "`predict`: a nearly uniform image", OWN, "exit 3",
     "warning: {dir}/images/blank.png is nearly uniform (pixel standard deviation 0.00 < 2): the prediction is "
     "unreliable")
case("own_text_as_jpg", "`predict`: a text file named .jpg", OWN, "exit 3",
     "skipped: cannot decode image {dir}/images/letter.jpg: cannot identify image file")
case("own_not_images", "`predict`: a PDF among the images", OWN, "exit 3",
     "1 file skipped: not images — scan.pdf; exit status 3")
case("own_evaluate_not_images", "`evaluate`: files that are not images among the images", EVALUATE, "exit 3",
     "excluded: 2 not images, e.g. notes.txt, scan.pdf")
case("own_evaluate_flagged", "`evaluate`: a nearly uniform image", EVALUATE, "exit 3",
     "flagged (scored): {dir}/images/blank.png is nearly uniform (pixel standard deviation 0.00 < 2)")
case("own_folder_not_images", "a labelled folder with a file that is not an image", "load_image_folder(DIR/folder)",
     "UserWarning", "{dir}/folder/test/benign: 1 file(s) skipped: not images — notes.txt")
case("train_recipe_unknown", "`train --recipe` naming an arm no notebook has",
     "python -m helpers.train --recipe 03_custom_cnn:bogus --checkpoint F", "exit 1",
     "error: 03_custom_cnn has no arm 'bogus'; known: reference, reference_no_dropout, improved")
CHECKPOINTS = {
    "missing": ("no checkpoint file", "error: checkpoint {dir}/missing.pt does not exist"),
    "empty": ("an empty checkpoint file", "error: checkpoint {dir}/empty.pt is empty (0 bytes): it was never written "
              "completely; save it again"),
    "truncated": ("a truncated checkpoint", "error: checkpoint {dir}/truncated.pt is not a PyTorch checkpoint (not a "
                  "torch zip archive): the file is truncated or of another kind"),
    "text": ("a text file as checkpoint", "error: checkpoint {dir}/text.pt is not a PyTorch checkpoint (not a torch zip "
             "archive): the file is truncated or of another kind"),
    "foreign_zip": ("a zip archive that is not a checkpoint", "error: checkpoint {dir}/foreign_zip.pt is not a PyTorch "
                    "checkpoint (not a torch zip archive)"),
    "damaged": ("a checkpoint with damaged bytes inside", "error: checkpoint {dir}/damaged.pt is damaged: "
                "PytorchStreamReader failed reading file data/0: invalid header or archive is corrupted"),
    "malicious": ("a malicious pickle (runs a command when unpickled)", "error: checkpoint {dir}/malicious.pt refused: "
                  "the file contains code or objects other than tensors"),
    "bare_state_dict": ("a bare state dict", "error: checkpoint {dir}/bare_state_dict.pt has format None, not "
                        f"'{CHECKPOINT_FORMAT}': it looks like a bare state dict; save the Classifier with "
                        "helpers.models.save_checkpoint"),
    "missing_key": ("a checkpoint missing a key", "error: checkpoint {dir}/missing_key.pt lacks the key(s) classes"),
    "other_arch": ("a checkpoint of another architecture", "error: checkpoint {dir}/other_arch.pt: its weights do not "
                   "fit the architecture 'improved_cnn': classifier.1.weight has shape (512, 2048) in the file but "
                   "(7, 256) in the model"),
    "size_mismatch": ("weights for 5 classes, 7 classes named", "error: checkpoint {dir}/size_mismatch.pt: its weights "
                      "do not fit the architecture 'reference_cnn': classifier.3.weight has shape (5, 512) in the file but "
                      "(7, 512) in the model"),
    "bad_policy": ("a checkpoint with an unknown resize_policy", "error: checkpoint {dir}/bad_policy.pt: resize_policy "
                   "must be one of center_crop, squash, pad; got 'stretch'"),
}
for kind, (what, message) in CHECKPOINTS.items():
    case(f"checkpoint_{kind}", f"`predict`: {what}", PREDICT.format(ckpt=f"{kind}.pt"), "exit 1", message)
case("cache_killed", "a cache build killed with SIGKILL", "cached_images(...) in a process killed mid-build",
     "temporary left", "the next build removes it: stale temporaries (older than the process, writer gone) are cleaned")
case("cache_interrupted", "a cache build interrupted (Ctrl-C)", "cached_images(...) when KeyboardInterrupt strikes",
     "KeyboardInterrupt", "no temporary left; the earlier cache unchanged")
case("checkpoint_write_fails", "`save_checkpoint` fails half-way", "save_checkpoint(model, 'model.pt') (torch.save raises)",
     "the exception", "no temporary left; the earlier model.pt unchanged")
case("merge_corrupt", "`scaling merge`: a corrupt JSON among the results", "python -m helpers.scaling merge --results DIR/results",
     "exit 0, warning", "warning: {dir}/results/bad.json is not valid JSON (Expecting value: line 1 column 1 (char 0)): skipped")
case("merge_foreign", "`scaling merge`: a foreign JSON among the results", "python -m helpers.scaling merge --results DIR/results",
     "exit 0, warning", "warning: {dir}/results/notes.json is not a result record of helpers.scaling: it lacks id, label, "
     "model, pretrained and 22 more: skipped")
case("merge_strict", "`scaling merge --strict`: a corrupt JSON", "python -m helpers.scaling merge --strict --results DIR/results",
     "exit 1", "error: {dir}/results/bad.json is not valid JSON (Expecting value: line 1 column 1 (char 0)) "
     "(--strict: no table written)")
case("merge_nothing", "`scaling merge`: no usable result file (an existing --out)",
     "python -m helpers.scaling merge --results DIR/results --out rows.csv", "exit 1",
     "error: no usable result files (*.json) in {dir}/results; {dir}/rows.csv kept as it was")
case("run_corrupt", "`scaling run`: a corrupt row file", "python -m helpers.scaling (run_grid)",
     "RuntimeWarning, row redone", "{dir}/results/ROW.json is not valid JSON (Expecting value: line 1 column 1 (char 0)): "
     "moved aside as ROW.json.corrupt; its row runs again")
case("scaling_preset", "`scaling --preset bogus`", "python -m helpers.scaling --preset bogus", "exit 2",
     "python -m helpers.scaling: error: argument --preset: invalid choice: 'bogus'")
case("metadata_empty_check", "a metadata CSV with a header and no rows", "python -m helpers.data check DIR", "exit 1",
     "problem: {dir}/ham/HAM10000_metadata.csv has a header but no rows: it lists no images")
case("metadata_empty_split", "a metadata CSV with a header and no rows", "python -m helpers.data split DIR --out split.csv",
     "exit 1", "error: {dir}/ham/HAM10000_metadata.csv has a header but no rows: it lists no images")
RESOLVE = {"epochs=0": "epochs must be a whole number >= 1 or None; got 0",
           "batch_size=0": "batch_size must be a whole number >= 1 or None; got 0",
           "image_size=0": "image_size must be a whole number >= 1 or None; got 0",
           "image_size=-64": "image_size must be a whole number >= 1 or None; got -64",
           "epochs=2.5": "epochs must be a whole number >= 1 or None; got 2.5",
           "max_images=-1": "max_images must be a whole number >= 1 or None; got -1"}
for call, message in RESOLVE.items():
    case(f"resolve_{call}", f"`resolve_config({call})`", f"resolve_config('smoke', {call})", "ValueError",
         f"resolve_config: {message}")
TRAIN = {"epochs=1.5": "epochs must be a whole number >= 1; got 1.5",
         "eval_batch_size=0": "eval_batch_size must be a whole number >= 1; got 0",
         "max_steps_per_epoch=0": "max_steps_per_epoch must be a whole number >= 1 or None; got 0",
         "batch_size=-8": "batch_size must be a whole number >= 1; got -8",
         "lr=-0.001": "lr must be a number >= 0; got -0.001",
         "patience=0": "patience must be a whole number >= 1 or None; got 0",
         "label_smoothing=1.5": "label_smoothing must be a number >= 0 and <= 1; got 1.5",
         "amp='fp8'": "amp must be one of auto, bf16, fp16, off; got 'fp8'"}
for call, message in TRAIN.items():
    case(f"train_{call}", f"`TrainConfig({call})`", f"TrainConfig({call})", "ValueError", f"TrainConfig.{message}")
AUGMENT = {"brightness=-0.1": "brightness must be a number >= 0 and <= 1; got -0.1",
           "crop_scale=(0.9, 0.5)": "crop_scale high must be a number >= 0.9 and <= 1; got 0.5",
           "crop_scale=(0, 1)": "crop_scale low must be a number > 0 and <= 1; got 0",
           "rotate_degrees=-5": "rotate_degrees must be a number >= 0 and <= 180; got -5"}
for call, message in AUGMENT.items():
    case(f"augment_{call}", f"`AugmentConfig({call})`", f"AugmentConfig({call})", "ValueError", f"AugmentConfig.{message}")
RECIPE = {"epochs=-3": ("03_custom_cnn", "epochs must be a whole number >= 1; got -3"),
          "reference_epochs=2.5": ("03_custom_cnn", "reference_epochs must be a whole number >= 1; got 2.5"),
          "image_size=0": ("04_resnet_transfer", "image_size must be a whole number >= 1; got 0"),
          "lr=-0.002": ("05_efficientnet_binary", "lr must be a number >= 0; got -0.002"),
          "resume='yes'": ("06_scaling_study", "resume must be True or False; got 'yes'"),
          "fractions=[0.5, 0]": ("06_scaling_study", "fractions must be a number > 0 and <= 1; got 0"),
          "colour=1": ("03_custom_cnn", "unknown parameter(s) colour for 03_custom_cnn")}
for call, (notebook, message) in RECIPE.items():
    case(f"recipe_{call}", f"`recipe(...)` override {call}", f"recipe('{notebook}', 'cpu', {call})", "ValueError",
         message if message.startswith("unknown") else f"{notebook} parameter {message}")
case("policy_build", "an unknown resize_policy for a model", "build_classifier('reference_cnn', CLASSES, 32, "
     "resize_policy='stretch')", "ValueError", "resize policy must be one of center_crop, squash, pad, got 'stretch'")
CLI_VALUES = {
    "train_epochs": (train_main, ["--data", "DIR", "--epochs", "0"], "python -m helpers.train --data DIR --epochs 0",
                     "error: argument --epochs: must be a whole number >= 1; got 0"),
    "train_image_size": (train_main, ["--data", "DIR", "--image-size", "1.5"],
                         "python -m helpers.train --data DIR --image-size 1.5",
                         "error: argument --image-size: expected a whole number; got '1.5'"),
    "train_lr": (train_main, ["--data", "DIR", "--lr", "-1"], "python -m helpers.train --data DIR --lr -1",
                 "error: argument --lr: must be a number > 0; got -1.0"),
    "scaling_seed": (scaling_main, ["--seed", "-1"], "python -m helpers.scaling --seed -1",
                     "error: argument --seed: must be a whole number >= 0; got -1"),
    "scaling_shard": (scaling_main, ["--shard", "0/2"], "python -m helpers.scaling --shard 0/2",
                      "error: argument --shard: --shard K/N needs 1 <= K <= N; got '0/2'"),
    "reports_timeout": (reports_main, ["--timeout", "0"], "python -m helpers.reports --timeout 0",
                        "error: argument --timeout: must be a whole number >= 1; got 0"),
    "reports_preset": (reports_main, ["--preset", "fast"], "python -m helpers.reports --preset fast",
                       "error: argument --preset: invalid choice: 'fast'"),
}
for key, (_, _, tried, message) in CLI_VALUES.items():
    case(f"cli_{key}", "a zero, negative, fractional or unknown command-line value", tried, "exit 2",
         f"{' '.join(tried.split()[:3])}: {message}")
case("cli_unexpected", "an unexpected exception inside a command", "any python -m helpers.… command", "exit 1",
     "error: KeyError: 'id' (unexpected; rerun with --debug for the traceback)")
case("cli_interrupt", "Ctrl-C", "any python -m helpers.… command", "exit 130", "error: interrupted")


def check(key: str, outcome: int | BaseException | warnings.WarningMessage, text: str, folder: Path | None = None) -> None:
    """Assert that an outcome (exit status, exception or warning) and its text match the case `key`."""
    expected = CASES[key]
    if isinstance(outcome, int):
        assert f"exit {outcome}" == expected.outcome.split(",")[0], (outcome, text)
    else:
        kind = outcome.category if isinstance(outcome, warnings.WarningMessage) else type(outcome)
        assert expected.outcome.split(",")[0] in [c.__name__ for c in kind.__mro__], (kind, text)
    message = expected.message.format(dir=folder) if folder is not None else expected.message
    assert message in text, f"{message!r} not in {text!r}"
    assert "Traceback" not in text


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under folder and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- predict and checkpoints


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(build_classifier("reference_cnn", CLASSES, 32), tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture
def workdir(tmp_path: Path, model_file: Path, synthetic_dir: Path) -> Path:
    """tmp_path with model.pt, images/ (two good images) and an earlier preds.csv."""
    shutil.copy(model_file, tmp_path / "model.pt")
    (tmp_path / "images").mkdir()
    for path in sorted((synthetic_dir / "images").glob("*.jpg"))[:2]:
        shutil.copy(path, tmp_path / "images" / path.name)
    (tmp_path / "preds.csv").write_text("image,p_nv,predicted\nearlier.jpg,1.0,nv\n")
    return tmp_path


def run_predict(folder: Path, checkpoint: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = predict_main(["--checkpoint", str(folder / checkpoint), "--images", str(folder / "images"),
                         "--out", str(folder / "preds.csv")])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_with_every_image_unreadable_keeps_the_earlier_csv(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    for path in (workdir / "images").iterdir():
        path.write_bytes(b"\xff\xd8 not a jpeg")
    before = snapshot(workdir)
    code, _, err = run_predict(workdir, "model.pt", capsys)
    check("predict_unreadable", code, err, workdir)
    assert snapshot(workdir) == before


def test_predict_with_an_empty_folder_exits_1_and_keeps_the_earlier_csv(workdir: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    for path in (workdir / "images").iterdir():
        path.unlink()
    before = snapshot(workdir)
    code, _, err = run_predict(workdir, "model.pt", capsys)
    check("predict_empty", code, err, workdir)
    assert snapshot(workdir) == before


def test_predict_with_some_images_skipped_exits_3_with_a_row_for_each(workdir: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    (workdir / "images" / "broken.jpg").write_bytes(b"not an image")
    images = snapshot(workdir / "images")
    code, out, err = run_predict(workdir, "model.pt", capsys)
    check("predict_some", code, err, workdir)
    table = pd.read_csv(workdir / "preds.csv", keep_default_na=False)
    assert len(table) == 3 and list(table.columns) == ["image", *[f"p_{c}" for c in CLASSES], "predicted", "error"]
    broken = table[table["image"].str.endswith("broken.jpg")].iloc[0]
    assert "cannot decode image" in broken["error"] and broken["predicted"] == "" and broken["p_nv"] == ""
    good = table[table["error"] == ""]
    assert len(good) == 2 and good["predicted"].isin(CLASSES).all()
    assert "2 predicted, 1 skipped" in out and snapshot(workdir / "images") == images


def test_predict_with_every_image_readable_exits_0(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_predict(workdir, "model.pt", capsys)
    assert code == 0 and err == ""
    table = pd.read_csv(workdir / "preds.csv", keep_default_na=False)
    assert len(table) == 2 and (table["error"] == "").all()


def _damage(data: bytes) -> bytes:
    """The checkpoint with the local header of its first tensor record zeroed (the zip directory intact)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        start = next(i for i in archive.infolist() if "/data/" in i.filename).header_offset
    return data[:start] + b"\x00" * 30 + data[start + 30:]


class _Payload:
    """Unpickling this runs a command that creates a marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def make_bad_checkpoint(kind: str, folder: Path, good: Path) -> Path:
    """Write the broken checkpoint `kind` into folder."""
    path = folder / f"{kind}.pt"
    payload = torch.load(good, weights_only=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "text":
        path.write_text("these are not the weights you are looking for\n")
    elif kind == "foreign_zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "a zip, but not torch.save's")
    elif kind == "damaged":
        path.write_bytes(_damage(good.read_bytes()))
    elif kind == "malicious":
        torch.save({"format": CHECKPOINT_FORMAT, "state_dict": _Payload(folder / "PWNED")}, path)
    elif kind == "bare_state_dict":
        torch.save(payload["state_dict"], path)
    elif kind == "missing_key":
        torch.save({k: v for k, v in payload.items() if k != "classes"}, path)
    elif kind == "other_arch":
        torch.save({**payload, "arch": {**payload["arch"], "name": "improved_cnn"}}, path)
    elif kind == "size_mismatch":
        five = torch.load(save_checkpoint(build_classifier("reference_cnn", CLASSES[:5], 32), folder / "five.pt"),
                          weights_only=True)
        (folder / "five.pt").unlink()
        torch.save({**five, "classes": CLASSES, "arch": {**five["arch"], "num_classes": 7}}, path)
    elif kind == "bad_policy":
        torch.save({**payload, "resize_policy": "stretch"}, path)
    return path


@pytest.mark.parametrize("kind", list(CHECKPOINTS))
def test_a_bad_checkpoint_is_named_and_nothing_is_written(kind: str, workdir: Path, capsys: pytest.CaptureFixture) -> None:
    path = make_bad_checkpoint(kind, workdir, workdir / "model.pt")
    before = snapshot(workdir)
    code, _, err = run_predict(workdir, path.name, capsys)
    check(f"checkpoint_{kind}", code, err, workdir)
    assert len(err.strip().splitlines()) == 1
    assert snapshot(workdir) == before  # preds.csv as it was, and nothing new (no PWNED marker)
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load_checkpoint(path)


def test_debug_shows_the_traceback(workdir: Path) -> None:
    make_bad_checkpoint("text", workdir, workdir / "model.pt")
    with pytest.raises(CheckpointError, match="text.pt"):
        predict_main(["--checkpoint", str(workdir / "text.pt"), "--images", str(workdir / "images"),
                      "--out", str(workdir / "preds.csv"), "--debug"])


def test_a_command_in_a_real_process_ends_with_one_error_line(ham_copy: Path) -> None:
    csv = ham_copy / "HAM10000_metadata.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")
    result = subprocess.run([sys.executable, "-m", "helpers.data", "split", str(ham_copy), "--out",
                             str(ham_copy.parent / "split.csv")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    check("metadata_empty_split", result.returncode, result.stderr, ham_copy.parent)
    assert result.stderr.count("\n") == 1 and not (ham_copy.parent / "split.csv").exists()


def test_a_failed_checkpoint_write_leaves_no_temporary(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(workdir)

    def broken_save(obj: object, path: str | Path) -> None:
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(build_classifier("reference_cnn", CLASSES, 32), workdir / "model.pt")
    assert not temporaries(workdir) and snapshot(workdir) == before


# ---------------------------------------------------------------- the image cache, killed


BUILD = """
import json, sys, time
from helpers.data import images
paths, cache, slow = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "slow"
load = images.load_resized
def slowly(*args, **kwargs):
    time.sleep(0.05)
    return load(*args, **kwargs)
if slow:
    images.load_resized = slowly
images.cached_images(paths, 32, cache, name="kill", workers=1, progress=False)
"""


def build_in_a_process(paths: list[str], cache: Path, slow: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUILD, json.dumps(paths), str(cache), "slow" if slow else "fast"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)


def test_a_cache_build_killed_leaves_a_temporary_that_the_next_build_removes(synthetic_dir: Path, tmp_path: Path) -> None:
    from helpers.data.images import cached_images

    paths = sorted(str(p) for p in (synthetic_dir / "images").glob("*.jpg"))
    cache = tmp_path / "cache"
    cached_images(paths[:10], 32, cache, name="kill", progress=False)  # an older cache of the same name
    old = snapshot(cache)
    build = build_in_a_process(paths, cache, slow=True)
    deadline = time.time() + 60
    while not temporaries(cache) and build.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    build.send_signal(signal.SIGKILL)
    build.wait(timeout=30)
    left = temporaries(cache)
    assert build.returncode == -signal.SIGKILL and len(left) == 1, build.stderr.read()
    assert {k: v for k, v in snapshot(cache).items() if not k.startswith(".")} == old  # the older cache untouched
    rebuild = build_in_a_process(paths, cache, slow=False)
    assert rebuild.wait(timeout=120) == 0, rebuild.stderr.read()
    assert not left[0].exists() and not temporaries(cache)
    [new] = cache.glob("*.npy")
    assert new.name not in old and len(cached_images(paths, 32, cache, name="kill", progress=False)) == len(paths)


def test_an_interrupted_cache_build_leaves_no_temporary(synthetic_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.data import images

    paths = sorted(str(p) for p in (synthetic_dir / "images").glob("*.jpg"))[:12]
    cache = tmp_path / "cache"
    images.cached_images(paths[:6], 32, cache, progress=False)
    old = snapshot(cache)
    load = images.load_resized

    def interrupted(path: str, *args: object) -> object:
        if path == paths[8]:
            raise KeyboardInterrupt
        return load(path, *args)

    monkeypatch.setattr(images, "load_resized", interrupted)
    with pytest.raises(KeyboardInterrupt):
        images.cached_images(paths, 32, cache, workers=1, progress=False)
    assert snapshot(cache) == old and not temporaries(cache)


def test_a_temporary_of_a_running_writer_is_kept(tmp_path: Path) -> None:
    from helpers.core.io import remove_stale_temporaries

    alive = tmp_path / f".x.npy.{os.getppid()}.abcd1234.tmp"  # our parent process: running, and older than us
    dead = tmp_path / ".x.npy.999999999.abcd1234.tmp"
    for path in (alive, dead):
        path.write_bytes(b"partial")
        os.utime(path, (1, 1))
    assert remove_stale_temporaries(tmp_path, "x.npy") == [dead] and alive.exists()


# ---------------------------------------------------------------- the scaling grid's results


def fake_record(identifier: str, fraction: float = 1.0) -> dict:
    """A result record with every field merging reads (values are placeholders)."""
    record = {key: 0.5 for key in scaling.RECORD_FIELDS}
    record.update(id=identifier, label="improved_cnn", model="improved_cnn", pretrained=False, fraction=fraction, seed=0)
    record["summary"] = {"per_class_recall": {c: 0.5 for c in CLASSES}, "ci95": {"balanced_accuracy": [0.4, 0.6]}}
    return record


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    for identifier in ("improved_cnn-f0.5-s0-aaaa", "improved_cnn-f1-s0-bbbb"):
        (folder / f"{identifier}.json").write_text(json.dumps(fake_record(identifier)))
    return folder


def run_merge(results: Path, capsys: pytest.CaptureFixture, *extra: str) -> tuple[int, str, str]:
    code = scaling_main(["merge", "--preset", "smoke", "--results", str(results), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("key,name,text", [("merge_corrupt", "bad.json", ""),
                                           ("merge_foreign", "notes.json", '{"title": "my notes"}')])
def test_merge_skips_a_corrupt_or_foreign_file_with_a_warning(key: str, name: str, text: str, results: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    (results / name).write_text(text)
    before = snapshot(results)
    code, _, err = run_merge(results, capsys, "--out", str(results.parent / "rows.csv"))
    check(key, code, err, results.parent)
    assert len(pd.read_csv(results.parent / "rows.csv")) == 2 and snapshot(results) == before


def test_merge_strict_fails_naming_the_file(results: Path, capsys: pytest.CaptureFixture) -> None:
    (results / "bad.json").write_text("")
    (results.parent / "rows.csv").write_text("earlier\n")
    before = snapshot(results.parent)
    code, _, err = run_merge(results, capsys, "--strict", "--out", str(results.parent / "rows.csv"))
    check("merge_strict", code, err, results.parent)
    assert snapshot(results.parent) == before


def test_merge_without_usable_files_keeps_the_earlier_table(results: Path, capsys: pytest.CaptureFixture) -> None:
    for path in results.glob("*.json"):
        path.write_text("[]")
    (results.parent / "rows.csv").write_text("earlier\n")
    before = snapshot(results.parent)
    code, _, err = run_merge(results, capsys, "--out", str(results.parent / "rows.csv"))
    check("merge_nothing", code, err, results.parent)
    assert err.count("warning:") == 2 and snapshot(results.parent) == before


def test_run_moves_a_corrupt_row_file_aside_and_redoes_the_row(synthetic_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.data.dataset import load_split_data

    data = load_split_data(synthetic_dir, 16, cache_dir=tmp_path / "cache", name="syn", device="cpu", progress=False)
    row = scaling.ScalingRow("improved_cnn", False, 1.0, 0, 16, 1, 0, 32, 1e-3, 0.0)
    identifier = scaling.row_id(row, scaling.data_fingerprint(data, "syn"))
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / f"{identifier}.json").write_text("")  # a write cut short by a full disk, say
    monkeypatch.setattr(scaling, "run_row", lambda row, data, fingerprint, n_boot: fake_record(identifier))
    with pytest.warns(RuntimeWarning) as warned:
        records = scaling.run_grid([row], scaling.GridData("unused", "syn", loaded={16: data}), folder, progress=False)
    check("run_corrupt", warned[0], str(warned[0].message).replace(identifier, "ROW"), tmp_path)
    assert (folder / f"{identifier}.json.corrupt").read_text() == ""
    assert json.loads((folder / f"{identifier}.json").read_text()) == records[0] == fake_record(identifier)


def test_an_unknown_preset_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        scaling_main(["--preset", "bogus", "--results", str(tmp_path)])
    check("scaling_preset", exit_.value.code, capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- data, parameters and command-line values


@pytest.mark.parametrize("command", ["check", "split"])
def test_a_metadata_file_without_rows_is_invalid(command: str, ham_copy: Path, capsys: pytest.CaptureFixture) -> None:
    csv = ham_copy / "HAM10000_metadata.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")
    before = snapshot(ham_copy.parent)
    out = ham_copy.parent / "split.csv"
    code = data_main(["check", str(ham_copy), "--quiet"] if command == "check" else ["split", str(ham_copy), "--out", str(out)])
    captured = capsys.readouterr()
    check(f"metadata_empty_{command}", code, captured.err, ham_copy.parent)
    assert snapshot(ham_copy.parent) == before and not out.exists()
    if command == "check":
        assert "INVALID" in captured.out and "0 images" not in captured.out


@pytest.mark.parametrize("call", list(RESOLVE))
def test_resolve_config_rejects_bad_sizes(call: str, synthetic_dir: Path) -> None:
    key, value = call.split("=")
    with pytest.raises(ValueError) as err:
        resolve_config("smoke", data_dir=str(synthetic_dir), **{key: ast.literal_eval(value)})
    check(f"resolve_{call}", err.value, str(err.value))


@pytest.mark.parametrize("call", list(TRAIN))
def test_train_config_rejects_bad_values(call: str) -> None:
    key, value = call.split("=")
    with pytest.raises(ValueError) as err:
        TrainConfig(**{key: ast.literal_eval(value)})
    check(f"train_{call}", err.value, str(err.value))


@pytest.mark.parametrize("call", list(AUGMENT))
def test_augment_config_rejects_bad_values(call: str) -> None:
    key, value = call.split("=")
    with pytest.raises(ValueError) as err:
        AugmentConfig(**{key: ast.literal_eval(value)})
    check(f"augment_{call}", err.value, str(err.value))


@pytest.mark.parametrize("call", list(RECIPE))
def test_recipe_overrides_are_checked(call: str) -> None:
    key, value = call.split("=")
    with pytest.raises(ValueError) as err:
        recipe(RECIPE[call][0], "cpu", **{key: ast.literal_eval(value)})
    check(f"recipe_{call}", err.value, str(err.value))


def test_good_values_still_pass() -> None:
    assert recipe("06_scaling_study", "cpu", resume=False, fractions=[0.5, 1.0], seeds=[0])["seeds"] == [0]
    assert TrainConfig(epochs=3, lr=0.0, patience=2, max_steps_per_epoch=5).epochs == 3
    assert AugmentConfig(crop_scale=[0.5, 1]).crop_scale == (0.5, 1.0)  # as read back from JSON
    assert AugmentConfig(True, True, True, None, 0, 0, 0, 0).rotate_degrees == 0


def test_an_unknown_resize_policy_fails_when_the_model_is_built() -> None:
    with pytest.raises(ValueError) as err:
        build_classifier("reference_cnn", CLASSES, 32, resize_policy="stretch")
    check("policy_build", err.value, str(err.value))


@pytest.mark.parametrize("key", list(CLI_VALUES))
def test_command_lines_reject_bad_values(key: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main, argv, _, _ = CLI_VALUES[key]
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path) if arg == "DIR" else arg for arg in argv])
    check(f"cli_{key}", exit_.value.code, capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


def test_unexpected_errors_and_interrupts_end_in_one_line(capsys: pytest.CaptureFixture) -> None:
    def fails(argv: list[str]) -> int:
        return {}["id"]

    def interrupted(argv: list[str]) -> int:
        raise KeyboardInterrupt

    check("cli_unexpected", cli.run(fails, []), capsys.readouterr().err)
    check("cli_interrupt", cli.run(interrupted, []), capsys.readouterr().err)
    with pytest.raises(KeyError):
        cli.run(fails, ["--debug"])


# ---------------------------------------------------------------- the table of docs/reliability.md


def render_table() -> str:
    """The reliability table of docs/reliability.md, one row per case."""
    lines = ["| bad input | tried with | outcome | message (`DIR`: the folder of the test) |", "|---|---|---|---|"]
    for item in CASES.values():
        message = item.message.format(dir="DIR").replace("|", "\\|")
        lines.append(f"| {item.bad_input} | `{item.tried}` | {item.outcome} | `{message}` |")
    return "\n".join(lines)


def test_readme_reliability_table_lists_every_case() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert START in text and END in text, f"{PAGE.name} lacks the {START} … {END} block"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    block = f"{START}\n{render_table()}\n{END}"
    if os.environ.get(UPDATE_ENV):
        with atomic_open(PAGE, "w", encoding="utf-8") as handle:
            handle.write(head + block + tail)
        return
    assert START + rest.split(END, 1)[0] + END == block, f"the table of docs/{PAGE.name} is out of date: rerun with {UPDATE_ENV}=1"


# ---------------------------------------------------------------- evaluate and train --recipe


@pytest.fixture
def labelled(workdir: Path) -> Path:
    """workdir with seven.pt (a 7-class checkpoint), labels.csv for its two images, and an earlier metrics.json."""
    from helpers.data.labels import DX_CLASSES

    torch.manual_seed(0)
    save_checkpoint(build_classifier("improved_cnn", list(DX_CLASSES), 16), workdir / "seven.pt")
    ids = [path.stem for path in sorted((workdir / "images").iterdir())]
    pd.DataFrame({"image_id": ids, "dx": ["nv", "mel"]}).to_csv(workdir / "labels.csv", index=False)
    (workdir / "metrics.json").write_text('{"earlier": true}')
    return workdir


def run_evaluate(folder: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    from helpers.evaluate import main as evaluate_main

    code = evaluate_main(["--checkpoint", str(folder / "seven.pt"), "--images", str(folder / "images"), "--labels",
                          str(folder / "labels.csv"), "--out", str(folder / "metrics.json"), "--n-boot", "20"])
    return code, capsys.readouterr().err


def test_evaluate_without_a_dx_column_names_it_and_keeps_the_earlier_json(labelled: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    (labelled / "labels.csv").write_text("image_id,diagnosis\nISIC_1,nv\n")
    before = snapshot(labelled)
    code, err = run_evaluate(labelled, capsys)
    check("evaluate_no_dx", code, err, labelled)
    assert snapshot(labelled) == before


def test_evaluate_with_nothing_to_score_keeps_the_earlier_json(labelled: Path, capsys: pytest.CaptureFixture) -> None:
    (labelled / "labels.csv").write_text("image_id,dx\nISIC_0000000,nv\n")
    before = snapshot(labelled)
    code, err = run_evaluate(labelled, capsys)
    check("evaluate_none", code, err, labelled)
    assert snapshot(labelled) == before


def test_evaluate_counts_an_unlabelled_image_and_scores_the_rest(labelled: Path, capsys: pytest.CaptureFixture) -> None:
    table = pd.read_csv(labelled / "labels.csv").head(1)
    table.to_csv(labelled / "labels.csv", index=False)
    code, err = run_evaluate(labelled, capsys)
    check("evaluate_some", code, err, labelled)
    result = json.loads((labelled / "metrics.json").read_text())
    assert result["n_images"] == 1 and result["excluded"]["images without labels"]["count"] == 1


def test_train_recipe_with_an_unknown_arm_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code = train_main(["--recipe", "03_custom_cnn:bogus", "--checkpoint", str(tmp_path / "F"), "--preset", "cpu"])
    check("train_recipe_unknown", code, capsys.readouterr().err)
    assert not (tmp_path / "F").exists()
