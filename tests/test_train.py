"""The training engine: augmentation, fit (learning, early stopping, imbalance), checkpoints, predict, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from helpers.training.augment import AugmentConfig, augment_batch, preview
from helpers.data.dataset import SplitData, load_split_data
from helpers.data.synthetic import make_synthetic
from helpers.training.inference import evaluate, predict
from helpers.models import build_classifier, load_checkpoint, save_checkpoint
from helpers.predict import main as predict_main
from helpers.training.loop import TrainConfig, class_weights, epoch_order, fit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SplitData:
    root = make_synthetic(tmp_path_factory.mktemp("syn") / "ham", n_images=420, image_size=(48, 36), progress=False)
    return load_split_data(root, 32, cache_dir=tmp_path_factory.mktemp("cache"), name="syn",
                           device="cpu", progress=False)


@pytest.fixture(scope="module")
def trained(data: SplitData, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    torch.manual_seed(0)
    model = build_classifier("reference_cnn", data.classes, 32)
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    config = TrainConfig(epochs=10, batch_size=32, lr=2e-3, imbalance="weighted_loss", progress=False)
    return model, fit(model, data.train, data.val, config, checkpoint_path=path)


def test_split_data_is_lesion_disjoint_uint8(data: SplitData) -> None:
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (32, 32, 3)
    assert len(data.train) + len(data.val) + len(data.test) == len(data.index)
    lesions = [set(data.rows(s)["lesion_id"]) for s in ("train", "val", "test")]
    assert not (lesions[0] & lesions[2]) and not (lesions[0] & lesions[1])
    assert data.rows("test")["dx"].cat.codes.tolist() == data.test.labels.tolist()


def test_each_augmentation_changes_images_and_keeps_range() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 16, 16, generator=generator)
    for name in ("hflip", "vflip", "rot90", "crop_scale", "brightness", "contrast", "saturation"):
        out = augment_batch(x, AugmentConfig().only(name), torch.Generator().manual_seed(1))
        assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
        assert not torch.equal(out, x), name
    assert torch.equal(augment_batch(x, AugmentConfig.none(), generator), x)


def test_flips_are_exact_symmetries() -> None:
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = augment_batch(x, AugmentConfig(True, True, True, None, 0, 0, 0, 0), torch.Generator().manual_seed(2))
    symmetries = [x, x.flip(3), x.flip(2), x.flip(2, 3), x.transpose(2, 3), x.transpose(2, 3).flip(3),
                  x.transpose(2, 3).flip(2), x.transpose(2, 3).flip(2, 3)]
    matched = [next(k for k, s in enumerate(symmetries) if torch.allclose(out[i], s[i], atol=1e-5)) for i in range(64)]
    assert len(set(matched)) >= 6  # per-image choices, covering most of the 8 symmetries


def test_color_jitter_keeps_what_each_factor_should_keep() -> None:
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25  # no clipping
    contrast = augment_batch(x, AugmentConfig().only("contrast"), torch.Generator().manual_seed(1))
    torch.testing.assert_close(contrast.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5, rtol=0)
    luma = torch.tensor([0.299, 0.587, 0.114])[:, None, None]
    saturated = augment_batch(x, AugmentConfig().only("saturation"), torch.Generator().manual_seed(1))
    torch.testing.assert_close((saturated * luma).sum(1), (x * luma).sum(1), atol=1e-5, rtol=0)
    brighter = augment_batch(x, AugmentConfig().only("brightness"), torch.Generator().manual_seed(1))
    ratio = brighter / x
    torch.testing.assert_close(ratio, ratio[:, :1, :1, :1].expand_as(ratio), atol=1e-4, rtol=0)


def test_preview_returns_uint8_copies() -> None:
    image = torch.randint(0, 256, (16, 16, 3), dtype=torch.uint8)
    copies = preview(image, AugmentConfig(), n=4)
    assert copies.shape == (4, 16, 16, 3) and copies.dtype == torch.uint8
    assert len({c.numpy().tobytes() for c in copies}) == 4


def test_fit_learns_the_synthetic_set(trained: tuple, data: SplitData) -> None:
    model, result = trained
    history = result.history
    assert list(history.columns[:6]) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy"]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert result.best_score == history["val_balanced_accuracy"].max()
    assert result.best_score > 0.45  # chance is 1/7
    test = evaluate(model, data.test)
    assert test["balanced_accuracy"] > 0.35 and test["probs"].shape == (len(data.test), 7)


def test_best_weights_are_restored_and_checkpointed(trained: tuple, data: SplitData) -> None:
    model, result = trained
    assert evaluate(model, data.val)["balanced_accuracy"] == pytest.approx(result.best_score)
    reloaded, payload = load_checkpoint(result.checkpoint)
    assert payload["extra"]["epoch"] == result.best_epoch
    assert payload["classes"] == data.classes and payload["image_size"] == 32
    assert payload["config"]["train"]["imbalance"] == "weighted_loss"
    np.testing.assert_allclose(predict(reloaded, data.test.images), predict(model.eval(), data.test.images), atol=1e-6)


def test_checkpoint_loads_with_weights_only(trained: tuple, tmp_path: Path) -> None:
    model, _ = trained
    path = save_checkpoint(model, tmp_path / "m.pt", {"note": "x"})
    payload = torch.load(path, weights_only=True)
    assert payload["arch"]["name"] == "reference_cnn" and payload["config"] == {"note": "x"}
    assert not list(tmp_path.glob("*.tmp"))


def test_early_stopping_stops(data: SplitData) -> None:
    model = build_classifier("reference_cnn", data.classes, 32)
    config = TrainConfig(epochs=30, batch_size=32, lr=0.0, patience=2, monitor="val_loss", progress=False)
    result = fit(model, data.train, data.val, config)
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


def test_tta_averages_flips(trained: tuple, data: SplitData) -> None:
    model, _ = trained
    images = data.test.images[:6]
    views = [images, images.flip(2), images.flip(1), images.flip(1, 2)]
    with torch.no_grad():
        model.eval()
        expected = torch.stack([model(v.permute(0, 3, 1, 2).float() / 255).float() for v in views]).mean(0).softmax(1)
    np.testing.assert_allclose(predict(model, images, tta=True, amp="off"), expected.numpy(), atol=1e-5)


def test_class_balancing() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    weights = class_weights(labels, 3)
    assert weights[1] / weights[0] == pytest.approx(9.0) and weights[2] == 0
    assert weights[:2].mean() == pytest.approx(1.0)
    gentle = class_weights(labels, 2, power=0.5)
    assert gentle[1] / gentle[0] == pytest.approx(3.0)
    drawn = epoch_order(labels, "balanced_sampling", torch.Generator().manual_seed(0))
    assert 0.35 < (labels[drawn] == 1).float().mean() < 0.65
    assert sorted(epoch_order(labels, "none", torch.Generator().manual_seed(0)).tolist()) == list(range(100))


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="sgd")


@pytest.mark.parametrize("optimizer,schedule", [("adam", "constant"), ("adadelta", "onecycle"), ("adamw", "cosine")])
def test_optimizers_and_schedules_run(data: SplitData, optimizer: str, schedule: str) -> None:
    model = build_classifier("reference_cnn", data.classes, 32)
    lr = 1.0 if optimizer == "adadelta" else 1e-3
    config = TrainConfig(epochs=2, batch_size=32, optimizer=optimizer, lr=lr, schedule=schedule,
                         label_smoothing=0.1, imbalance="balanced_sampling", progress=False)
    history = fit(model, data.train, data.val, config).history
    assert len(history) == 2 and history["train_loss"].notna().all()
    if schedule != "constant":
        assert history["lr"].iloc[-1] < lr


def test_predict_cli_reports_corrupt_images(trained: tuple, tmp_path: Path, synthetic_dir: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    _, result = trained
    folder = tmp_path / "imgs"
    folder.mkdir()
    for path in sorted((synthetic_dir / "images").glob("*.jpg"))[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image")
    noisy = np.random.default_rng(0).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    noisy[..., 3] = 255
    Image.fromarray(noisy, "RGBA").save(folder / "rgba.png")  # varied pixels: a uniform one is flagged, not clean
    out = tmp_path / "preds.csv"
    assert predict_main(["--checkpoint", str(result.checkpoint), "--images", str(folder), "--out", str(out), "--tta"]) == 3
    table = pd.read_csv(out)
    assert len(table) == 5 and table["error"].notna().tolist() == table["image"].str.contains("broken").tolist()
    assert list(table.columns) == ["image", *[f"p_{c}" for c in ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]],
                                   "predicted", "error"]
    np.testing.assert_allclose(table[table["error"].isna()].filter(like="p_").sum(axis=1), 1.0, atol=1e-4)
    assert "broken.jpg" in capsys.readouterr().err


def test_ddp_with_two_gloo_processes_matches_one_process(tmp_path: Path) -> None:
    """Two gloo ranks, each on half of every batch of 32, train as one process on the whole batch (tests/ddp_worker.py).

    DDP averages the two shards' gradients, which equals the whole batch's mean gradient; what is left is the order of
    floating-point sums: about 1e-7 relative in the losses and a few 1e-6 in the weights after 6 Adam steps (Adam's
    m / sqrt(v) magnifies differences in near-zero gradients), measured on a 2-core CPU. The tolerances, 1e-5 relative on
    the losses and 1e-4 on the weights, are far above that and far below what a rank that skips the gradient all-reduce,
    draws its own batch order, or trains on the wrong shard does (1e-2 and more).
    """
    from tests.ddp_worker import train

    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "tests.ddp_worker", str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=300)
    assert double.returncode == 0, double.stderr[-2000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    one = train()
    assert one["world"] == 1 and [run["world"] for run in ranks] == [2, 2]
    # the two replicas are one model: the same averaged gradient, the same optimizer step, bit for bit
    assert all(torch.equal(ranks[0]["state"][k], ranks[1]["state"][k]) for k in one["state"])
    two = ranks[0]
    assert two["history"]["epoch"] == one["history"]["epoch"] == [1, 2]
    assert two["history"]["train_images"] == one["history"]["train_images"] == [96, 96]  # both shards counted
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose(two["history"][key], one["history"][key], rtol=1e-5, atol=0, err_msg=key)
    np.testing.assert_allclose(two["history"]["train_accuracy"], one["history"]["train_accuracy"], atol=1 / 96)  # a tie
    for key, value in one["state"].items():
        torch.testing.assert_close(two["state"][key], value, rtol=0, atol=1e-4, msg=key)


def test_train_command_runs_under_torchrun(synthetic_dir: Path, tmp_path: Path) -> None:
    """python -m helpers.train under torchrun: rank 0 builds the split and cache while rank 1 waits, and prints the one
    summary line (its numbers cannot match one process: augmentation and dropout draw per rank)."""
    command = ["--data", str(synthetic_dir), "--model", "reference_cnn", "--image-size", "32", "--epochs", "1",
               "--batch-size", "32", "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "helpers.train", *command], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=300)
    assert double.returncode == 0, double.stderr[-2000:]
    lines = [line for line in double.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 only
    summary = json.loads(lines[0])
    assert summary["world_size"] == 2 and summary["epochs_run"] == 1 and summary["test_probs_shape"][1] == 7
