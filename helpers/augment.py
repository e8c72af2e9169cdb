"""Augmentation of whole batches as tensor ops on the batch's own device (GPU or CPU).

Every transform draws one random setting per image, so a batch of 256 costs a handful of kernel
launches instead of 256 PIL calls. Input and output are float tensors (N, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run and how strong they are; each one can be switched off on its own."""

    hflip: bool = True
    vflip: bool = True
    rot90: bool = True
    crop_scale: tuple[float, float] | None = (0.7, 1.0)
    rotate_degrees: float = 0.0
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15

    @classmethod
    def none(cls) -> "AugmentConfig":
        """No augmentation at all (the seed recipes)."""
        return cls(False, False, False, None, 0.0, 0.0, 0.0, 0.0)

    def only(self, name: str) -> "AugmentConfig":
        """This config with every augmentation but `name` switched off, for previews."""
        fields = {f.name for f in dataclasses.fields(self)}
        if name not in fields:
            raise ValueError(f"unknown augmentation {name!r}; one of {', '.join(sorted(fields))}")
        return dataclasses.replace(AugmentConfig.none(), **{name: getattr(self, name)})


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) * (high - low) + low


def flips_and_rotations(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal/vertical flips and 90-degree rotations, chosen per image.

    The rotation is a transpose of square images; combined with the two flips it reaches all
    eight symmetries of the square, each with probability 1/8.
    """
    n, device = x.shape[0], x.device
    if config.hflip:
        x = torch.where((torch.rand(n, generator=generator, device=device) < 0.5)[:, None, None, None], x.flip(3), x)
    if config.vflip:
        x = torch.where((torch.rand(n, generator=generator, device=device) < 0.5)[:, None, None, None], x.flip(2), x)
    if config.rot90 and x.shape[2] == x.shape[3]:
        x = torch.where((torch.rand(n, generator=generator, device=device) < 0.5)[:, None, None, None], x.transpose(2, 3), x)
    return x


def crop_and_rotate(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random resized crops (area share in crop_scale) and small rotations, as one affine resampling."""
    if config.crop_scale is None and not config.rotate_degrees:
        return x
    n, device = x.shape[0], x.device
    low, high = config.crop_scale or (1.0, 1.0)
    side = _uniform(n, low, high, generator, device).sqrt()
    shift_x = (1 - side) * _uniform(n, -1, 1, generator, device)
    shift_y = (1 - side) * _uniform(n, -1, 1, generator, device)
    angle = _uniform(n, -1, 1, generator, device) * math.radians(config.rotate_degrees)
    cos, sin = angle.cos() * side, angle.sin() * side
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and saturation factors per image."""
    n, device = x.shape[0], x.device
    if config.brightness:
        x = x * _uniform(n, 1 - config.brightness, 1 + config.brightness, generator, device)[:, None, None, None]
    if config.contrast:
        factor = _uniform(n, 1 - config.contrast, 1 + config.contrast, generator, device)[:, None, None, None]
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * factor + mean
    if config.saturation:
        factor = _uniform(n, 1 - config.saturation, 1 + config.saturation, generator, device)[:, None, None, None]
        gray = (x * torch.tensor([0.299, 0.587, 0.114], device=device, dtype=x.dtype)[:, None, None]).sum(1, keepdim=True)
        x = (x - gray) * factor + gray
    return x.clamp(0, 1)


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Apply every switched-on augmentation to a float batch (N, 3, H, W) in [0, 1]."""
    x = flips_and_rotations(x, config, generator)
    x = crop_and_rotate(x, config, generator)
    return color_jitter(x, config, generator)


def preview(image: torch.Tensor, config: AugmentConfig, n: int = 8, seed: int = 0) -> torch.Tensor:
    """n augmented copies of one uint8 image (H, W, 3), returned as uint8 (n, H, W, 3) for plotting."""
    generator = torch.Generator(device=image.device).manual_seed(seed)
    batch = image.permute(2, 0, 1).float().div(255).expand(n, -1, -1, -1).contiguous()
    out = augment_batch(batch, config, generator)
    return out.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)
