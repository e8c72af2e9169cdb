"""The linear probe on cached frozen features (helpers.training.probe). Tiny synthetic tensors, a fraction of a
second each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import helpers.training.probe as probe
from helpers.data.tensors import ImageData
from helpers.training.inference import predict_logits
from helpers.models import build_classifier, head_module, load_checkpoint, save_checkpoint
from helpers.training.probe import extract_features, fit_logistic, linear_probe
from helpers.training.loop import TrainConfig

CLASSES = ["a", "b", "c"]
COLOURS = torch.tensor([[200.0, 40, 40], [40, 200, 40], [40, 40, 200]])


def toy_images(n: int, size: int = 16, seed: int = 0) -> ImageData:
    """n images of three classes told apart by their colour, with pixel noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = COLOURS[labels][:, None, None, :] + torch.randn(n, size, size, 3, generator=generator) * 30
    return ImageData(images.clamp(0, 255).to(torch.uint8), labels)


@pytest.fixture(scope="module")
def toy() -> tuple[ImageData, ImageData]:
    return toy_images(96), toy_images(48, seed=1)


def tiny_cnn(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_classifier("improved_cnn", CLASSES, 16, widths=(4, 8))


def test_fit_logistic_separates_a_toy_problem_and_folds_the_standardisation_in() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=generator) * 4 + 10  # far from zero, on another scale: standardised first
    def blobs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 3
        return centres[y] + torch.randn(n, 16, generator=generator), y
    (train_x, train_y), (val_x, val_y) = blobs(90), blobs(60)
    layer, decay, search = fit_logistic(train_x, train_y, val_x, val_y, 3)
    assert len(search) == len(probe.WEIGHT_DECAYS) and decay in probe.WEIGHT_DECAYS
    assert search["val_balanced_accuracy"].max() == 1.0 and (layer(val_x).argmax(1) == val_y).all()
    assert search["train_loss"].is_monotonic_decreasing  # weaker penalties fit the training set closer


def test_linear_probe_gives_a_classifier_that_predicts_like_features_and_head(toy: tuple, tmp_path: Path) -> None:
    model = tiny_cnn()
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("net.classifier")}
    config = TrainConfig(amp="off", progress=False)
    result = linear_probe(model, *toy, config, input_size=24, weight_decays=(1e-2, 1e-3))
    assert result.model is model and result.input_size == 24 and model.image_size == 24 and result.feature_dim == 8
    assert all(torch.equal(model.state_dict()[k], v) for k, v in backbone.items())  # frozen
    val = toy[1]
    features = extract_features(model, val.images, input_size=24, amp="off")
    upsampled = F.interpolate(val.images.permute(0, 3, 1, 2).float() / 255, size=(24, 24), mode="bilinear",
                              align_corners=False)
    with torch.no_grad():
        logits = model(upsampled)
        head = head_module(model)[-1]
        torch.testing.assert_close(logits, features @ head.weight.T + head.bias, rtol=1e-4, atol=1e-4)
    assert (logits.argmax(1) == val.labels).float().mean() > 0.9
    path = save_checkpoint(model, tmp_path / "probe.pt")  # the pipeline's checkpoints hold the fitted head
    reloaded, payload = load_checkpoint(path)
    assert payload["image_size"] == 24
    torch.testing.assert_close(predict_logits(reloaded, val.images, amp="off"), predict_logits(model, val.images, amp="off"))


def test_features_are_cached_by_fingerprint_in_memory_and_on_disk(toy: tuple, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    model, images = tiny_cnn(), toy[0].images
    first = extract_features(model, images, amp="off", cache_dir=tmp_path, name="toy")
    files = list(tmp_path.glob("toy-16px-*.pt"))
    assert len(files) == 1 and not list(tmp_path.glob(".*.tmp"))

    def no_backbone(*args: object) -> None:
        raise AssertionError("the backbone ran although the features were cached")

    monkeypatch.setattr(probe, "_run_backbone", no_backbone)
    probe._MEMORY.clear()
    assert torch.equal(extract_features(model, images, amp="off", cache_dir=tmp_path, name="toy"), first)  # the file
    files[0].unlink()
    assert torch.equal(extract_features(model, images, amp="off", cache_dir=tmp_path, name="toy"), first)  # memory
    probe._MEMORY.clear()
    with pytest.raises(AssertionError, match="the backbone ran"):  # cached nowhere: extracted again
        extract_features(model, images, amp="off", cache_dir=tmp_path, name="toy")
    monkeypatch.undo()
    key = probe.feature_fingerprint(model, images, 16)
    with torch.no_grad():
        head_module(model)[-1].weight.add_(1.0)  # the head does not change the features
    assert probe.feature_fingerprint(model, images, 16) == key
    with torch.no_grad():
        model.net.features[0][0].weight.mul_(1.5)  # the backbone does
    assert probe.feature_fingerprint(model, images, 16) != key
    assert probe.feature_fingerprint(model, images, 24) != probe.feature_fingerprint(model, images, 16)


def test_a_probe_needs_a_linear_head(toy: tuple) -> None:
    model = build_classifier("reference_cnn", CLASSES, 16)
    with pytest.raises(ValueError, match=r"^a linear probe needs a model whose head is one linear layer; "
                                         r"reference_cnn's head is Sequential"):
        linear_probe(model, *toy)
