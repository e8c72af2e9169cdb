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

from ..core.validate import check_bool, check_number


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

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "rot90"):
            check_bool(f"AugmentConfig.{name}", getattr(self, name))
        if self.crop_scale is not None:
            if not isinstance(self.crop_scale, (tuple, list)) or len(self.crop_scale) != 2:
                raise ValueError(f"AugmentConfig.crop_scale must be None or (low, high); got {self.crop_scale!r}")
            low = check_number("AugmentConfig.crop_scale low", self.crop_scale[0], above_minimum=True, maximum=1.0)
            high = check_number("AugmentConfig.crop_scale high", self.crop_scale[1], minimum=low, maximum=1.0)
            object.__setattr__(self, "crop_scale", (low, high))  # a JSON list back to a hashable tuple
        check_number("AugmentConfig.rotate_degrees", self.rotate_degrees, maximum=180.0)
        for name in ("brightness", "contrast", "saturation"):  # factors are drawn from [1 - x, 1 + x]
            check_number(f"AugmentConfig.{name}", getattr(self, name), maximum=1.0)

    @classmethod
    def none(cls) -> "AugmentConfig":
        """No augmentation at all (the reference notebooks' recipes)."""
        return cls(False, False, False, None, 0.0, 0.0, 0.0, 0.0)

    def only(self, name: str) -> "AugmentConfig":
        """This config with every augmentation but `name` switched off, for previews."""
        fields = {f.name for f in dataclasses.fields(self)}
        if name not in fields:
            raise ValueError(f"unknown augmentation {name!r}; one of {', '.join(sorted(fields))}")
        return dataclasses.replace(AugmentConfig.none(), **{name: getattr(self, name)})


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) * (high - low) + low


def _coin(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) < 0.5


def geometric(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Flips, 90-degree rotations, random resized crops and small rotations, chosen per image, in one resampling.

    Each image gets one affine map: a random symmetry of the square (the two flips and a transpose
    reach all eight, each with probability 1/8), then a crop covering a crop_scale share of the area
    and a rotation of up to rotate_degrees. One grid_sample applies them all, which on a CPU costs
    less than separate passes; pure symmetries land exactly on pixel centres.
    """
    n, device = x.shape[0], x.device
    square = x.shape[2] == x.shape[3]
    if not (config.hflip or config.vflip or (config.rot90 and square) or config.crop_scale or config.rotate_degrees):
        return x
    ones = torch.ones(n, device=device)
    sign_x = torch.where(_coin(n, generator, device), -ones, ones) if config.hflip else ones
    sign_y = torch.where(_coin(n, generator, device), -ones, ones) if config.vflip else ones
    symmetry = torch.diag_embed(torch.stack([sign_x, sign_y], 1))
    if config.rot90 and square:
        swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], device=device)
        symmetry = torch.where(_coin(n, generator, device)[:, None, None], swap @ symmetry, symmetry)
    low, high = config.crop_scale or (1.0, 1.0)
    side = _uniform(n, low, high, generator, device).sqrt()
    angle = _uniform(n, -1, 1, generator, device) * math.radians(config.rotate_degrees)
    cos, sin = angle.cos() * side, angle.sin() * side
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    shift = (1 - side)[:, None] * torch.stack([_uniform(n, -1, 1, generator, device) for _ in range(2)], 1)
    theta = torch.cat([rotation @ symmetry, shift[:, :, None]], 2)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and saturation factors per image, applied as one 3x3 colour map.

    Brightness b scales, contrast c blends with the image's mean m, saturation s blends with the
    luma: all linear, so together out = c*b*S(s) @ pixel + (1 - c)*b*m, then clipped to [0, 1].
    """
    if not (config.brightness or config.contrast or config.saturation):
        return x
    n, device = x.shape[0], x.device
    b = _uniform(n, 1 - config.brightness, 1 + config.brightness, generator, device)
    c = _uniform(n, 1 - config.contrast, 1 + config.contrast, generator, device)
    s = _uniform(n, 1 - config.saturation, 1 + config.saturation, generator, device)
    luma = torch.tensor([0.299, 0.587, 0.114], device=device)
    saturation = s[:, None, None] * torch.eye(3, device=device) + (1 - s)[:, None, None] * luma.expand(3, 3)
    matrix = (c * b)[:, None, None] * saturation
    offset = ((1 - c) * b * x.mean(dim=(1, 2, 3)))[:, None]
    pixels = x.permute(0, 2, 3, 1).reshape(n, -1, 3)  # a view for channels_last batches
    out = torch.baddbmm(offset[:, None, :].expand(-1, 1, 3), pixels, matrix.transpose(1, 2).to(x.dtype))
    return out.clamp_(0, 1).reshape(n, x.shape[2], x.shape[3], 3).permute(0, 3, 1, 2)


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Apply every switched-on augmentation to a float batch (N, 3, H, W) in [0, 1]."""
    return color_jitter(geometric(x, config, generator), config, generator)


def preview(image: torch.Tensor, config: AugmentConfig, n: int = 8, seed: int = 0) -> torch.Tensor:
    """n augmented copies of one uint8 image (H, W, 3), returned as uint8 (n, H, W, 3) for plotting."""
    generator = torch.Generator(device=image.device).manual_seed(seed)
    batch = image.permute(2, 0, 1).float().div(255).expand(n, -1, -1, -1).contiguous()
    out = augment_batch(batch, config, generator)
    return out.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)

