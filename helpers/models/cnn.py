"""The two CNNs written for this course: the reference notebook's small CNN, and an improved one.

- `ReferenceCNN` (``reference_cnn``): the reference notebook's CNN: three 3x3 conv layers (32/64/128
  channels), each followed by ReLU and 2x2 max-pooling, then dropout 0.5 and two fully connected layers.
  Its first FC layer has 128 * (image_size // 8)**2 inputs, so it is built for one `image_size` (default 128).
- `ImprovedCNN` (``improved_cnn``): five stages (16 to 256 channels, `widths`) of (conv-BN-ReLU) x 2 with
  max-pooling between them, global average pooling and dropout (default 0.3) before the classifier;
  any input size >= 16.
"""

from __future__ import annotations

import torch
from torch import nn


class ReferenceCNN(nn.Module):
    """The reference notebook's CNN: 3 x (conv 3x3, ReLU, max-pool 2x2), dropout, two FC layers."""

    def __init__(self, num_classes: int, image_size: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        if image_size < 8:
            raise ValueError(f"reference_cnn needs image_size >= 8, got {image_size}")
        self.image_size = image_size
        # Max-pooling and ReLU commute (both are monotone), so pooling first computes exactly the
        # reference's conv -> ReLU -> pool with a quarter of the ReLU work. ReLUs are not in-place so
        # that Grad-CAM hooks can be put on them.
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        side = image_size // 8
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(128 * side * side, 512),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of `image_size` x `image_size` images."""
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"reference_cnn was built for {self.image_size}x{self.image_size} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]}: create it with image_size={x.shape[-1]}"
            )
        return self.classifier(torch.flatten(self.features(x), 1))


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """A 3x3 convolution (no bias: batch norm follows), batch norm and ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]


class ImprovedCNN(nn.Module):
    """Stages of (conv-BN-ReLU) x 2 with max-pooling between, global average pooling, dropout, FC."""

    def __init__(
        self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128, 256), dropout: float = 0.3
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for index, width in enumerate(widths):
            if index:
                layers.append(nn.MaxPool2d(2))
            layers.append(nn.Sequential(*conv_bn_relu(in_channels, width), *conv_bn_relu(width, width)))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_channels, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of images of any size >= 2**(stages - 1)."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
