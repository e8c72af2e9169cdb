"""One small deterministic training, run by tests/test_train.py in one process and under torchrun with 2 gloo processes.

`python -m tests.ddp_worker OUT_DIR` under torchrun: every rank trains the same model on the same in-memory data and
writes rank<R>.pt (its history and final weights) into OUT_DIR. `train()` is the same run in the calling process.

Nothing in it draws random numbers per rank: no augmentation (its generator is seeded per rank), no dropout (its masks
come from each process's global generator), no batch norm (its statistics would be over a rank's shard), fp32. Then
what DDP guarantees is all that differs from one process: each rank's gradient is the mean of the shards' gradients,
equal to the one-process gradient of the whole batch up to the order of floating-point sums.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

CLASSES = ["a", "b", "c"]
COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "train_images"]


def toy_images(n: int, seed: int):
    """n 16 px images of three classes told apart by colour, with pixel noise (the same on every rank)."""
    from helpers.data.tensors import ImageData

    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    colours = torch.tensor([[190.0, 60, 60], [60, 190, 60], [60, 60, 190]])
    images = colours[labels][:, None, None, :] + torch.randn(n, 16, 16, 3, generator=generator) * 60
    return ImageData(images.clamp(0, 255).to(torch.uint8), labels)


def train() -> dict[str, Any]:
    """Fit reference_cnn (dropout 0) for 2 epochs of 3 batches of 32; {"rank", "world", "history", "state"}."""
    from helpers.models import build_classifier
    from helpers.training.augment import AugmentConfig
    from helpers.training.loop import TrainConfig, distributed, fit

    rank, world = distributed()
    torch.manual_seed(0)
    model = build_classifier("reference_cnn", CLASSES, 16, dropout=0.0)
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-3, schedule="constant", augment=AugmentConfig.none(),
                         amp="off", channels_last=False, progress=False)  # fp32 channels_last is slow on CPUs
    result = fit(model, toy_images(96, 0), toy_images(48, 1), config)
    history = result.history[COLUMNS].to_dict("list")
    return {"rank": rank, "world": world, "history": history,
            "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


def main(out: str) -> int:
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        dist.init_process_group("gloo")  # gloo on every machine: the data and the model stay on the CPU
    try:
        run = train()
        torch.save(run, Path(out) / f"rank{run['rank']}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
