"""The training levers for short runs, each off by default: EMA weights, progressive resizing, warm-up, layer decay,
Mixup / CutMix, and the linear probe on cached frozen features. Tiny synthetic tensors, a fraction of a second each."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_post_hook

import helpers.training.probe as probe
from helpers.training.augment import AugmentConfig, mix_batch
from helpers.data.tensors import ImageData
from helpers.training.inference import evaluate, predict_logits
from helpers.models import build_classifier, head_module, load_checkpoint, save_checkpoint, set_backbone_trainable
from helpers.training.probe import extract_features, fit_logistic, linear_probe
from helpers.training.loop import (TrainConfig, backbone_units, epoch_sizes, fit, make_optimizer, make_schedule,
                              soft_cross_entropy)

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


BASE = dict(epochs=2, batch_size=16, max_steps_per_epoch=3, lr=3e-3, label_smoothing=0.1, imbalance="weighted_loss",
            class_weight_power=0.5, progress=False)


def trained(toy: tuple[ImageData, ImageData], **levers: object) -> tuple[dict[str, torch.Tensor], object]:
    model = tiny_cnn()
    result = fit(model, *toy, TrainConfig(**BASE, **levers))
    return model.state_dict(), result


# ---------------------------------------------------------------- off means off


def test_every_lever_is_off_by_default() -> None:
    config = TrainConfig()
    assert (config.ema_decay, config.progressive, config.warmup_epochs, config.layer_decay) == (None, (), 0.0, None)
    assert (config.mixup_alpha, config.cutmix_alpha, config.mix_prob, config.mixes) == (0.0, 0.0, 1.0, False)


@pytest.mark.parametrize("levers", [{"progressive": ((1, 1.0),)}, {"layer_decay": 1.0}, {"ema_decay": 0.0},
                                    {"mixup_alpha": 0.4, "mix_prob": 0.0}])
def test_a_lever_at_its_neutral_value_trains_bitwise_like_the_default(toy: tuple, levers: dict) -> None:
    # Each goes through its lever's code (an input-size check, per-unit groups, an averaged copy), so each shows that
    # the lever's code leaves the random streams, the order of operations and the kept weights alone.
    plain, plain_result = trained(toy)
    other, other_result = trained(toy, **levers)
    assert plain.keys() == other.keys() and all(torch.equal(plain[k], other[k]) for k in plain)
    timing = ["train_time_s", "epoch_time_s", "image_size"]
    assert plain_result.history.drop(columns=timing, errors="ignore").equals(
        other_result.history.drop(columns=timing, errors="ignore"))


@pytest.mark.parametrize(("call", "message"), [
    ("ema_decay=1.0", "TrainConfig.ema_decay must be a number >= 0 and < 1, or None; got 1.0"),
    ("ema_decay=-0.5", "TrainConfig.ema_decay must be a number >= 0 and < 1, or None; got -0.5"),
    ("progressive=((2, 1.5),)", "TrainConfig.progressive scale must be a number > 0 and <= 1; got 1.5"),
    ("progressive=((0, 0.5),)", "TrainConfig.progressive epochs must be a whole number >= 1; got 0"),
    ("progressive=(2, 0.5)", "TrainConfig.progressive must be (epochs, scale) pairs, e.g. ((2, 0.5), (2, 0.75)); got (2, 0.5)"),
    ("warmup_epochs=-1", "TrainConfig.warmup_epochs must be a number >= 0; got -1"),
    ("layer_decay=0", "TrainConfig.layer_decay must be a number > 0 and <= 1; got 0"),
    ("layer_decay=1.5", "TrainConfig.layer_decay must be a number > 0 and <= 1; got 1.5"),
    ("mixup_alpha=-0.2", "TrainConfig.mixup_alpha must be a number >= 0; got -0.2"),
    ("cutmix_alpha='1'", "TrainConfig.cutmix_alpha must be a number >= 0; got '1'"),
    ("mix_prob=1.5", "TrainConfig.mix_prob must be a number >= 0 and <= 1; got 1.5"),
])
def test_a_bad_lever_value_is_one_line_naming_the_field(call: str, message: str) -> None:
    key, value = call.split("=", 1)
    with pytest.raises(ValueError) as err:
        TrainConfig(**{key: ast.literal_eval(value)})
    assert str(err.value) == message


def test_warmup_with_onecycle_is_refused_and_levers_read_back_from_json() -> None:
    with pytest.raises(ValueError, match=r"^TrainConfig.warmup_epochs needs schedule 'cosine' or 'constant'"):
        TrainConfig(schedule="onecycle", warmup_epochs=1)
    config = TrainConfig(progressive=[[2, 0.5], [1, 0.75]], ema_decay=0.99, warmup_epochs=0.5, layer_decay=0.8,
                         mixup_alpha=0.2)
    assert config.progressive == ((2, 0.5), (1, 0.75))
    saved = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig(**{**saved, "augment": AugmentConfig(**saved["augment"])}) == config


# ---------------------------------------------------------------- EMA


def test_ema_weights_are_the_hand_computed_average_and_are_what_is_evaluated_kept_and_saved(
        toy: tuple, tmp_path: Path) -> None:
    model, decay, live = tiny_cnn(), 0.6, []
    hook = register_optimizer_step_post_hook(
        lambda *_: live.append({k: v.detach().clone() for k, v in model.state_dict().items()}))
    try:
        config = TrainConfig(epochs=1, batch_size=16, max_steps_per_epoch=2, lr=1e-2, ema_decay=decay,
                             restore_best=False, augment=AugmentConfig.none(), progress=False)
        result = fit(model, *toy, config, checkpoint_path=tmp_path / "ema.pt")
    finally:
        hook.remove()
    assert len(live) == 2
    kept = model.state_dict()
    for key, value in kept.items():
        if value.is_floating_point():  # weights and batch-norm statistics, averaged alike
            torch.testing.assert_close(value, decay * live[0][key] + (1 - decay) * live[1][key], rtol=0, atol=1e-6)
        else:  # the batch counters follow the live model
            assert torch.equal(value, live[1][key])
    conv = "net.features.0.0.weight"
    assert not torch.allclose(kept[conv], live[1][conv]) and not torch.allclose(kept[conv], live[0][conv])
    assert evaluate(model, toy[1], amp=config.amp)["accuracy"] == result.history["val_accuracy"].iloc[0]
    saved, _ = load_checkpoint(tmp_path / "ema.pt")
    assert all(torch.equal(saved.state_dict()[k], v.cpu()) for k, v in kept.items())


# ---------------------------------------------------------------- progressive resizing


def test_progressive_resizing_trains_small_first_and_validates_at_full_size(toy: tuple) -> None:
    model, seen = tiny_cnn(), []
    model.net.register_forward_pre_hook(lambda module, inputs: seen.append((module.training, *inputs[0].shape[::3])))
    config = TrainConfig(epochs=3, batch_size=16, max_steps_per_epoch=2, progressive=((1, 0.5), (1, 0.75)),
                         progress=False)
    history = fit(model, *toy, config).history
    training = [size for is_training, _, size in seen if is_training]
    assert training == [8, 8, 16, 16, 16, 16]  # 0.5 and 0.75 of 16 px, rounded to multiples of 8, then 16
    assert [size for is_training, n, size in seen if not is_training and n == len(toy[1])] == [16, 16, 16]  # val
    assert history["image_size"].tolist() == [8, 16, 16]
    assert epoch_sizes(dataclasses.replace(config, epochs=2), (64, 64)) == [(32, 32), (64, 64)]  # last epoch: full
    assert epoch_sizes(dataclasses.replace(config, epochs=4), (64, 64)) == [(32, 32), (48, 48), (64, 64), (64, 64)]


@pytest.mark.parametrize("name", ["reference_cnn", "vit_tiny"])
def test_progressive_resizing_refuses_a_model_built_for_one_size(toy: tuple, name: str) -> None:
    train, val = (ImageData(torch.zeros(8, 32, 32, 3, dtype=torch.uint8), torch.arange(8) % 3) for _ in range(2))
    model = build_classifier(name, CLASSES, 32)
    config = TrainConfig(epochs=2, batch_size=4, progressive=((1, 0.5),), progress=False)
    with pytest.raises(ValueError, match=rf"^TrainConfig.progressive: {name} does not take 16x16 inputs .*"
                                         "needs a model that takes any input size"):
        fit(model, train, val, config)


# ---------------------------------------------------------------- warm-up and layer decay


def learning_rates(config: TrainConfig, total_steps: int) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=config.lr)
    schedule = make_schedule(optimizer, config, total_steps)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_warmup_rises_linearly_then_follows_the_schedule() -> None:
    rates = learning_rates(TrainConfig(epochs=4, lr=0.1, schedule="cosine", warmup_epochs=1), 40)
    assert rates[:10] == pytest.approx([0.01 * (k + 1) for k in range(10)])
    assert all(a >= b for a, b in zip(rates[10:], rates[11:])) and rates[-1] < 0.002
    assert learning_rates(TrainConfig(epochs=4, lr=0.1, schedule="cosine"), 40)[0] == pytest.approx(0.1)  # no warm-up
    flat = learning_rates(TrainConfig(epochs=2, lr=0.1, schedule="constant", warmup_epochs=0.5), 20)
    assert flat[:5] == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.1]) and flat[5:] == pytest.approx([0.1] * 15)


def test_layer_decay_gives_earlier_units_smaller_rates() -> None:
    model = build_classifier("resnet18", CLASSES, 32)
    optimizer = make_optimizer(model, TrainConfig(lr=1e-2, backbone_lr=1e-3, layer_decay=0.5))
    groups = optimizer.param_groups
    assert groups[0]["depth"] == 0 and groups[0]["lr"] == 1e-2
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in head_module(model).parameters()}
    backbone = groups[1:]
    assert len(backbone) == 10  # conv1, bn1 and the eight basic blocks of layer1..4
    assert [g["depth"] for g in backbone] == list(range(10, 0, -1))
    assert [g["lr"] for g in backbone] == pytest.approx([1e-3 * 0.5 ** d for d in range(10, 0, -1)])
    assert backbone[0]["params"][0] is model.net.conv1.weight and backbone[-1]["params"][0] is model.net.layer4[1].conv1.weight
    every = [id(p) for g in groups for p in g["params"]]
    assert sorted(every) == sorted(id(p) for p in model.parameters() if p.requires_grad) and len(set(every)) == len(every)
    set_backbone_trainable(model, False)
    assert len(make_optimizer(model, TrainConfig(layer_decay=0.5)).param_groups) == 1  # a probe: the head alone


def test_loose_parameters_join_the_first_unit() -> None:
    model = build_classifier("vit_tiny", CLASSES, 32)
    units = backbone_units(model.net)
    assert any(p is model.net.cls_token for p in units[0]) and any(p is model.net.pos_embed for p in units[0])
    assert len(units) >= 12  # patch embedding, the twelve blocks, the final norm


# ---------------------------------------------------------------- Mixup and CutMix


def test_mixup_targets_sum_to_one_and_mix_two_labels() -> None:
    x = torch.rand(8, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(8)  # one class per image: a target's two entries name the image and its partner
    mixed, targets = mix_batch(x, labels, 8, 0.4, 0.0, 1.0, torch.Generator().manual_seed(3))
    torch.testing.assert_close(targets.sum(1), torch.ones(8))
    lam = targets.diagonal().min().item()  # the share of every image's own label (1 for one left in place)
    assert 0 < lam < 1
    paired = 0
    for i in range(8):
        others = [j for j in range(8) if j != i and targets[i, j] > 0]
        partner = others[0] if others else i  # an image the shuffle left in place is mixed with itself
        paired += len(others)
        assert len(others) <= 1 and targets[i, i] == pytest.approx(lam if others else 1.0)
        torch.testing.assert_close(mixed[i], lam * x[i] + (1 - lam) * x[partner])
    assert paired >= 6


def test_cutmix_pastes_a_box_whose_share_is_the_partners_target() -> None:
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(6)
    mixed, targets = mix_batch(x, labels, 6, 0.0, 1.0, 1.0, torch.Generator().manual_seed(5))
    kept = (mixed == x).all(1).float().mean((1, 2))  # the share of each image left unpasted
    torch.testing.assert_close(targets.diagonal(), kept)
    assert (kept < 1).sum() >= 4 and torch.allclose(targets.sum(1), torch.ones(6))
    unmixed, one_hot = mix_batch(x, labels, 6, 0.4, 1.0, 0.0, torch.Generator().manual_seed(5))
    assert unmixed is x and torch.equal(one_hot, torch.eye(6))
    with pytest.raises(ValueError, match="mixup_alpha > 0 or cutmix_alpha > 0"):
        mix_batch(x, labels, 6, 0.0, 0.0, 1.0, torch.Generator())


def test_soft_targets_keep_label_smoothing_and_class_weights() -> None:
    generator = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(12, 4, generator=generator), torch.arange(12) % 4
    weight = torch.tensor([0.5, 2.0, 1.0, 0.25])
    one_hot = F.one_hot(labels, 4).float()
    for w in (None, weight):
        expected = F.cross_entropy(logits, labels, weight=w, label_smoothing=0.1)
        torch.testing.assert_close(soft_cross_entropy(logits, one_hot, w, 0.1), expected)
    half = (one_hot + F.one_hot(labels.roll(1), 4).float()) / 2  # two labels mixed half and half
    both = (F.cross_entropy(logits, labels, reduction="none") + F.cross_entropy(logits, labels.roll(1), reduction="none")) / 2
    torch.testing.assert_close(soft_cross_entropy(logits, half), both.mean())


def test_fit_with_mixup_and_cutmix_trains_and_differs_from_without(toy: tuple) -> None:
    plain, plain_result = trained(toy)
    mixed, mixed_result = trained(toy, mixup_alpha=0.4, cutmix_alpha=1.0)
    assert mixed_result.history["train_loss"].notna().all()
    assert not torch.equal(plain["net.classifier.1.weight"], mixed["net.classifier.1.weight"])


# ---------------------------------------------------------------- the linear probe on cached features


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
