"""Every model of the course behind one registry: `create_model(name, num_classes, pretrained)`.

Names (see `model_names()`):

- ``reference_cnn`` and ``improved_cnn``: the course's own CNNs (`helpers.models.cnn`); only reference_cnn
  depends on ``image_size``.
- torchvision: ``resnet18/34/50/101/152``, ``alexnet`` (input >= 63 px), ``vit_b_16``, ``efficientnet_b0``.
- timm: ``mixer_b16_224`` (Mixer-B/16), ``mixer_small`` (Mixer-S/16, no published weights) and ``vit_tiny``
  (ViT-Ti/16); ViTs and Mixers are built for one `image_size` (a multiple of 16, default 224).
- ``efficientnet_lite0``, ``efficientnet_lite1``, ``efficientnet_lite2``: EfficientNet-Lite0/1/2 from
  ``efficientnet-lite-pytorch`` (inputs scaled to [-1, 1]).

Every builder accepts ``image_size`` so notebooks can pass it uniformly. ``pretrained=True`` loads ImageNet
weights (`helpers.models.weights`: cached, else downloaded, else WeightsUnavailableError);
``pretrained="file.pth"`` loads a local file instead (ImageNet weights or a checkpoint of this project). A head
of another size than `num_classes` in the weights is skipped, leaving a freshly initialised task head (with
``num_classes=1000`` the ImageNet head is kept).

Each model records how it was made, the one record of its architecture: `model_spec(model)` gives
``{"name", "num_classes", "kwargs", "pretrained"}`` (checkpoints store it), and `model_from_spec(spec)` rebuilds
the architecture without weights.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .cnn import ImprovedCNN, ReferenceCNN
from .weights import (PRETRAINED, lite_file, read_state_dict, timm_cfg, timm_pretrained, torchvision_state,
                      weight_source)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
HALF: tuple[float, float, float] = (0.5, 0.5, 0.5)

_SPEC_ATTRIBUTE = "model_spec"


# ---------------------------------------------------------------------------------------------
# Builders: build(num_classes, pretrained: bool, **kwargs) -> nn.Module
# ---------------------------------------------------------------------------------------------


def _build_reference_cnn(num_classes: int, pretrained: bool = False, image_size: int = 128,
                         dropout: float = 0.5) -> nn.Module:
    del pretrained  # always False: create_model refuses ImageNet weights for models without them
    return ReferenceCNN(num_classes, image_size=image_size, dropout=dropout)


def _build_improved_cnn(
    num_classes: int,
    pretrained: bool = False,
    image_size: int | None = None,
    widths: tuple[int, ...] | list[int] = (16, 32, 64, 128, 256),
    dropout: float = 0.3,
) -> nn.Module:
    del pretrained, image_size  # no ImageNet weights; fully convolutional: any input size
    return ImprovedCNN(num_classes, widths=tuple(widths), dropout=dropout)


def _check_patch_multiple(name: str, image_size: int, patch: int = 16) -> None:
    if image_size % patch:
        raise ValueError(f"{name} needs image_size divisible by its patch size {patch}, got {image_size}")


def _build_torchvision(
    arch: str,
    num_classes: int,
    pretrained: bool = False,
    image_size: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    from torchvision.models import get_model

    if arch.startswith("vit_"):
        kwargs["image_size"] = image_size or 224
        _check_patch_multiple(arch, kwargs["image_size"])
    # The weights first: downloaded into the torch hub cache if missing, or a clear error before any build.
    state, path = torchvision_state(arch) if pretrained else (None, None)
    model = get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    if state is not None:
        _load_state(model, arch, state, source=path)
    return model


def _build_timm(
    name: str,
    arch: str,
    num_classes: int,
    pretrained: bool = False,
    image_size: int = 224,
    **kwargs: Any,
) -> nn.Module:
    import timm

    _check_patch_multiple(name, image_size)
    kwargs.update(num_classes=num_classes, img_size=image_size)
    if not pretrained:
        return timm.create_model(arch, pretrained=False, **kwargs)
    if arch.startswith("mixer") and image_size != 224:
        raise ValueError(
            f"{name} pretrained weights need image_size=224: a Mixer's token-mixing layers are sized "
            f"by the number of patches. Use image_size=224 or pretrained=False."
        )
    return timm_pretrained(name, arch, **kwargs)


def _build_efficientnet_lite(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    image_size: int | None = None,
    dropout: float = 0.2,
    drop_connect_rate: float = 0.2,
) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    del image_size  # image_size=None below: "same" padding computed per input, so any size works
    model = EfficientNet.from_name(
        name.replace("_", "-"),
        num_classes=num_classes,
        image_size=None,
        dropout_rate=dropout,
        drop_connect_rate=drop_connect_rate,
    )
    if pretrained:
        path = lite_file(name)
        _load_state(model, name, read_state_dict(path), source=path)
    return model


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """How to build one registered model and where its parts are."""

    build: Callable[..., nn.Module]  # build(num_classes, pretrained: bool, **kwargs)
    head: str  # submodule replaced for the task; the rest is the backbone
    gradcam: Callable[[nn.Module], nn.Module] | None
    timm_arch: str = ""


def _resnet_entry(arch: str) -> _Entry:
    return _Entry(functools.partial(_build_torchvision, arch), "fc", lambda m: m.layer4[-1])


def _timm_entry(name: str, arch: str) -> _Entry:
    return _Entry(functools.partial(_build_timm, name, arch), "head", None, timm_arch=arch)


_REGISTRY: dict[str, _Entry] = {
    "reference_cnn": _Entry(_build_reference_cnn, "classifier", lambda m: m.features[-1]),
    "improved_cnn": _Entry(_build_improved_cnn, "classifier", lambda m: m.features[-1]),
    **{arch: _resnet_entry(arch) for arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
    "alexnet": _Entry(
        functools.partial(_build_torchvision, "alexnet"),
        "classifier.6",
        lambda m: m.features[11],  # ReLU after the last conv (the next layer is max-pooling)
    ),
    "vit_b_16": _Entry(functools.partial(_build_torchvision, "vit_b_16"), "heads.head", None),
    "efficientnet_b0": _Entry(
        functools.partial(_build_torchvision, "efficientnet_b0"), "classifier.1", lambda m: m.features[-1]
    ),
    "mixer_b16_224": _timm_entry("mixer_b16_224", PRETRAINED["mixer_b16_224"].arch),
    "mixer_small": _timm_entry("mixer_small", "mixer_s16_224"),  # timm has no weights for it
    "vit_tiny": _timm_entry("vit_tiny", PRETRAINED["vit_tiny"].arch),
    # The head's ReLU6 is one module shared with the stem, so Grad-CAM uses the head's batch norm.
    **{name: _Entry(functools.partial(_build_efficientnet_lite, name), "_fc", lambda m: m._bn1)
       for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")},
}


def model_names() -> list[str]:
    """Names accepted by `create_model`."""
    return list(_REGISTRY)


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int, pretrained: bool | str | Path = False, **kwargs: Any) -> nn.Module:
    """Build model `name` with a `num_classes` head; weights: none, ImageNet (True) or a local file.

    `kwargs` go to the builder (``image_size``, ``dropout``, timm's ``drop_rate`` ...) and are
    recorded, with `name`, `num_classes` and `pretrained`, in `model_spec(model)`.
    """
    entry = _entry(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if pretrained is True:
        weight_source(name)  # ValueError for a model without published weights
    model = entry.build(num_classes, pretrained=pretrained is True, **kwargs)
    spec = {"name": name, "num_classes": num_classes, "kwargs": copy.deepcopy(kwargs), "pretrained": str(pretrained)}
    setattr(model, _SPEC_ATTRIBUTE, spec)
    if not isinstance(pretrained, bool):
        load_weights(model, pretrained)
    return model


def model_spec(model: nn.Module) -> dict[str, Any]:
    """How `model` was made: the {"name", "num_classes", "kwargs"} that rebuild it and the weights it started from."""
    spec = getattr(_unwrap(model), _SPEC_ATTRIBUTE, None)
    if spec is None:
        raise ValueError("this model was not made by helpers.models.create_model, so it has no spec")
    return copy.deepcopy(spec)


def model_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild the architecture described by `model_spec` output, with fresh weights (no download); it keeps spec."""
    model = create_model(spec["name"], spec["num_classes"], pretrained=False, **dict(spec.get("kwargs", {})))
    setattr(model, _SPEC_ATTRIBUTE, copy.deepcopy(dict(spec)))
    return model


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside torch.compile, DataParallel, DistributedDataParallel or Classifier wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif not hasattr(model, _SPEC_ATTRIBUTE) and isinstance(getattr(model, "net", None), nn.Module):  # Classifier
            model = model.net
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


def _name_of(model: nn.Module, name: str | None = None) -> str:
    if name is not None:
        return name
    return model_spec(model)["name"]


# ---------------------------------------------------------------------------------------------
# Loading a local weights file
# ---------------------------------------------------------------------------------------------


def _adapt_state(model: nn.Module, name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a state dict to `model`'s layout where the library knows how (ViT position embeddings)."""
    entry = _entry(name)
    if entry.timm_arch.startswith("vit"):
        from timm.models.vision_transformer import checkpoint_filter_fn

        return checkpoint_filter_fn(state, model)
    if entry.timm_arch.startswith("mixer"):
        from timm.models.mlp_mixer import checkpoint_filter_fn

        return checkpoint_filter_fn(state, model)
    if name == "vit_b_16":
        wanted = model.encoder.pos_embedding.shape
        found = state.get("encoder.pos_embedding")
        if found is not None and found.shape != wanted:
            from torchvision.models.vision_transformer import interpolate_embeddings

            return dict(interpolate_embeddings(model.image_size, model.patch_size, state))
    return state


def _load_state(model: nn.Module, name: str, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load `state` into `model`; head tensors of another shape are skipped (the task head stays)."""
    state = _adapt_state(model, name, dict(state))
    own = model.state_dict()
    head = _entry(name).head + "."
    skipped = [k for k in state if k.startswith(head) and k in own and state[k].shape != own[k].shape]
    for key in skipped:  # e.g. ImageNet's 1000-class head in a 7-class model
        del state[key]
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    if mismatched:
        details = ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:5])
        raise ValueError(f"{source}: tensor shapes differ from {name}'s: {details}")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in skipped]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{source} does not fit {name}: missing {missing[:5]} ({len(missing)} in all), "
            f"unexpected {result.unexpected_keys[:5]} ({len(result.unexpected_keys)} in all)"
        )


def load_weights(model: nn.Module, path: str | Path, name: str | None = None) -> nn.Module:
    """Load a local weights file into `model` (made by create_model, or say its `name`); return it.

    A head of another size in the file is skipped; every other tensor must fit, else ValueError.
    """
    name = _name_of(model, name)
    _load_state(_unwrap(model), name, read_state_dict(path), source=path)
    return model


# ---------------------------------------------------------------------------------------------
# Head and backbone
# ---------------------------------------------------------------------------------------------


def head_module(model: nn.Module, name: str | None = None) -> nn.Module:
    """The task head (the layers made for num_classes) of a model made by `create_model`."""
    model = _unwrap(model)
    return model.get_submodule(_entry(_name_of(model, name)).head)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the head, e.g. for a larger learning rate than the backbone's."""
    return list(head_module(model).parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of everything except the head."""
    head = {id(p) for p in head_module(model).parameters()}
    return [p for p in model.parameters() if id(p) not in head]


def set_backbone_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze (False) or unfreeze (True) everything except the head; the head stays trainable.

    Frozen batch-norm layers still update their running statistics in train mode.
    """
    for parameter in backbone_parameters(model):
        parameter.requires_grad_(trainable)
    for parameter in head_parameters(model):
        parameter.requires_grad_(True)


def gradcam_layer(model: nn.Module, name: str | None = None) -> nn.Module:
    """The last convolutional block of a CNN, whose activations and gradients Grad-CAM uses."""
    model = _unwrap(model)
    name = _name_of(model, name)
    locate = _entry(name).gradcam
    if locate is None:
        raise ValueError(f"{name!r} is not a CNN: Grad-CAM needs a convolutional feature map")
    return locate(model)


# ---------------------------------------------------------------------------------------------
# Inputs and cost
# ---------------------------------------------------------------------------------------------


def normalization(name: str, pretrained: bool) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) per channel for inputs in [0, 1] to model `name`.

    With pretrained weights: the statistics the weights were trained with (ImageNet's for
    torchvision, the pretrained config's for timm, 0.5/0.5 for EfficientNet-Lite). From scratch
    any fixed standardisation works; this project uses ImageNet's for every model, so weights of a
    model without published weights (reference_cnn, improved_cnn, mixer_small) also use ImageNet's.
    """
    _entry(name)  # ValueError for an unknown name
    source = PRETRAINED.get(name)
    if not pretrained or source is None or source.library == "torchvision":
        return IMAGENET_MEAN, IMAGENET_STD
    if source.library == "timm":
        cfg = timm_cfg(source.arch)
        return tuple(cfg.mean), tuple(cfg.std)
    return HALF, HALF  # EfficientNet-Lite: inputs scaled to [-1, 1]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with requires_grad if `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flops_per_image(model: nn.Module, image_size: int) -> int:
    """Forward FLOPs for one image_size x image_size RGB image (FlopCounterMode: 2 per multiply-add)."""
    parameter = next(model.parameters())
    x = torch.zeros(1, 3, image_size, image_size, device=parameter.device, dtype=parameter.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())

