"""A deployable classifier: network + input normalisation + class names, saved as one self-contained checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .io import atomic_path
from .models import create_model, normalization

CHECKPOINT_FORMAT = "skin-lesion-classifier/1"


class Classifier(nn.Module):
    """Takes uint8 or [0, 1] float images (N, 3, H, W), normalises them and returns logits."""

    def __init__(self, net: nn.Module, arch: dict[str, Any], classes: Sequence[str], image_size: int,
                 mean: Sequence[float], std: Sequence[float], resize_policy: str = "center_crop") -> None:
        super().__init__()
        self.net = net
        self.arch = dict(arch)
        self.classes = list(classes)
        self.image_size = int(image_size)
        self.resize_policy = resize_policy
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images; uint8 input is scaled to [0, 1] first."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return self.net((images - self.mean) / self.std)


def build_classifier(name: str, classes: Sequence[str], image_size: int, pretrained: bool | str | Path = False,
                     resize_policy: str = "center_crop", **kwargs: Any) -> Classifier:
    """Create the named network with a head for `classes`, wrapped with its normalisation."""
    kwargs = {"image_size": image_size, **kwargs}
    net = create_model(name, len(classes), pretrained=pretrained, **kwargs)
    mean, std = normalization(name, bool(pretrained))
    arch = {"name": name, "num_classes": len(classes), "kwargs": kwargs, "pretrained": str(pretrained)}
    return Classifier(net, arch, classes, image_size, mean, std, resize_policy)


def save_checkpoint(model: Classifier, path: str | Path, config: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write weights, architecture, classes, image size, normalisation and config to path, atomically."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.net.state_dict().items()},
        "arch": model.arch,
        "classes": model.classes,
        "image_size": model.image_size,
        "resize_policy": model.resize_policy,
        "normalization": {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()},
        "config": config or {},
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the classifier saved at path (loaded with weights_only=True) and return it with its payload."""
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    arch = payload["arch"]
    net = create_model(arch["name"], arch["num_classes"], pretrained=False, **arch["kwargs"])
    net.load_state_dict(payload["state_dict"])
    norm = payload["normalization"]
    model = Classifier(net, arch, payload["classes"], payload["image_size"], norm["mean"], norm["std"],
                       payload.get("resize_policy", "center_crop"))
    return model.eval(), payload
