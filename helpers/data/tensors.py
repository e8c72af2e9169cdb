"""The images of a split in memory, as tensors: a uint8 stack and its labels, and where they live.

On a GPU the images go onto the device when they fit with room to spare, else into pinned host memory,
from which every batch is copied asynchronously; on a CPU they stay where they are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

GPU_CACHE_FRACTION = 0.5  # the image cache may take at most this share of the GPU's free memory...
GPU_HEADROOM_BYTES = 2 * 1024**3  # ...after leaving this much for the model, activations and workspaces


def placement(nbytes: int, device: str | torch.device, fraction: float = GPU_CACHE_FRACTION,
              headroom: int = GPU_HEADROOM_BYTES) -> str:
    """Where an image cache of nbytes for device should live: 'device', 'pinned' (host memory) or 'cpu'."""
    device = torch.device(device)
    if device.type == "cpu":
        return "cpu"
    if device.type != "cuda":
        return "device"
    free, _ = torch.cuda.mem_get_info(device)
    return "device" if nbytes <= fraction * max(free - headroom, 0) else "pinned"


@dataclass
class ImageData:
    """Images as a uint8 tensor (N, H, W, 3) and integer labels; batches are built on `device`.

    The images live on `device`, or in (pinned) host memory when they do not fit there, from which
    each batch is copied asynchronously; the labels always live on `device` (default: the labels' device).
    """

    images: torch.Tensor
    labels: torch.Tensor
    device: torch.device | None = None

    def __post_init__(self) -> None:
        self.labels = self.labels.to(self.device if self.device is not None else self.labels.device)
        self.device = self.labels.device  # a tensor's device always has its index: comparable with the images'

    @classmethod
    def from_numpy(cls, images: np.ndarray, labels: np.ndarray, device: str | torch.device = "cpu") -> "ImageData":
        """Copy a (possibly memory-mapped) uint8 array onto device, or into pinned memory when it does not fit there."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3); got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        stored = torch.from_numpy(np.ascontiguousarray(images))
        where = placement(stored.nbytes, device)
        if where == "device":
            stored = stored.to(device)
        elif where == "pinned":
            stored = stored.pin_memory()
        return cls(stored, torch.as_tensor(np.asarray(labels), dtype=torch.long), torch.device(device))

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images (B, 3, H, W) in [0, 1] on device, and their labels; index may be on the images' device."""
        if self.images.device == self.device:
            chosen = self.images[index]
        else:
            chosen = self._gather(index, pin=self.device.type == "cuda").to(self.device, non_blocking=True)
        x = chosen.permute(0, 3, 1, 2).float().div_(255)
        return x, self.labels[self._on_device(index)]

    def subset(self, index: torch.Tensor) -> "ImageData":
        """The images and labels at index (repeats allowed), stored where these are stored."""
        if self.images.device == self.device:
            return ImageData(self.images[index.to(self.device)], self.labels[index.to(self.device)], self.device)
        return ImageData(self._gather(index, pin=self.images.is_pinned()), self.labels[self._on_device(index)], self.device)

    def _gather(self, index: torch.Tensor, pin: bool) -> torch.Tensor:
        rows = index.to(self.images.device)
        if not pin:
            return self.images[rows]
        # Straight into pinned memory (one copy), so that the copy to the GPU can run asynchronously.
        out = torch.empty((len(rows), *self.images.shape[1:]), dtype=self.images.dtype, pin_memory=True)
        return torch.index_select(self.images, 0, rows, out=out)

    def _on_device(self, index: torch.Tensor) -> torch.Tensor:
        if index.device == self.device:
            return index
        if self.device.type == "cuda" and not index.is_pinned():
            index = index.pin_memory()  # a blocking copy would wait for the GPU at every batch
        return index.to(self.device, non_blocking=True)


def default_device() -> torch.device:
    """cuda when available (the rank's GPU under torchrun), else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")
