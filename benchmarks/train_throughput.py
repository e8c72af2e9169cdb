"""Training throughput: our pipeline against a seed-style baseline, same model, same data, same process.

Baseline (what the seed notebooks do): a per-image PIL Dataset over the JPEG files with torchvision
transforms, a DataLoader with batch size 16 and one worker per CPU core, fp32, NCHW.
Ours: images decoded once into the uint8 cache (built and timed separately), served from memory on the
training device, augmented as batch tensor ops, bf16 autocast where supported, channels_last.

Both are timed after a warm-up; the last line printed is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from helpers.course.config import hardware_description
from helpers.data import DX_CLASSES, load_ham10000
from helpers.data.images import cached_images
from helpers.data.tensors import ImageData
from helpers.models import build_classifier
from helpers.core.precision import resolve_amp
from helpers.training.loop import TrainConfig, fit


class SeedStyleDataset(Dataset):
    """One JPEG decoded with PIL and transformed per __getitem__, as in the seed notebooks."""

    def __init__(self, paths: list[str], labels: np.ndarray, image_size: int) -> None:
        self.paths, self.labels = paths, labels
        self.transform = transforms.Compose([
            transforms.Resize((image_size, image_size)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), int(self.labels[i])


def baseline_throughput(model: torch.nn.Module, paths: list[str], labels: np.ndarray, image_size: int,
                        device: torch.device, warmup_batches: int = 3) -> float:
    """Images per second of the seed-style loop (batch 16, fp32, a worker per core), after warm-up batches."""
    loader = DataLoader(SeedStyleDataset(paths, labels, image_size), batch_size=16, shuffle=True,
                        num_workers=os.cpu_count() or 1, persistent_workers=False, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    seen, started = 0, None
    for step, (x, y) in enumerate(loader):
        if step == warmup_batches:
            _sync(device)
            started, seen = time.perf_counter(), 0
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model.net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
    _sync(device)
    return seen / (time.perf_counter() - started)


def ours_throughput(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device,
                    batch_size: int, compile_model: bool) -> float:
    """Images per second of helpers.train.fit's training step: epoch 1 warms up, epoch 2 is timed."""
    data = ImageData.from_numpy(images, labels, device)
    config = TrainConfig(epochs=2, batch_size=batch_size, schedule="constant", lr=1e-4, optimizer="adam",
                         compile=compile_model, progress=False, eval_batch_size=batch_size)
    tiny_val = data.subset(torch.arange(batch_size))
    history = fit(model, data, tiny_val, config).history
    return float(history["train_images"].iloc[-1] / history["train_time_s"].iloc[-1])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Run both pipelines and print images per second and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="HAM10000-layout folder")
    parser.add_argument("--model", default="reference_cnn")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, help="use only the first K images (default: all)")
    parser.add_argument("--batch-size", type=int, default=128, help="our batch size (the baseline keeps 16)")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model")
    args = parser.parse_args()

    device = torch.device(args.device)
    index = load_ham10000(args.data)
    if args.images:
        index = index.iloc[: args.images]
    paths, labels = index["path"].tolist(), index["dx"].cat.codes.to_numpy().astype(np.int64)
    with tempfile.TemporaryDirectory() as cache_dir:
        started = time.perf_counter()
        images = np.asarray(cached_images(paths, args.image_size, cache_dir, progress=False))
        cache_s = time.perf_counter() - started

    torch.manual_seed(0)
    make = lambda: build_classifier(args.model, DX_CLASSES, args.image_size).to(device)
    baseline = baseline_throughput(make(), paths, labels, args.image_size, device)
    ours = ours_throughput(make(), images, labels, device, args.batch_size, args.compile)
    result = {
        "model": args.model, "image_size": args.image_size, "device": args.device, "hardware": hardware_description(),
        "images": len(paths), "baseline_batch_size": 16, "ours_batch_size": args.batch_size,
        "ours_amp": resolve_amp("auto", device), "compile": args.compile, "cache_build_s": round(cache_s, 2),
        "baseline_img_per_s": round(baseline, 1), "ours_img_per_s": round(ours, 1), "ratio": round(ours / baseline, 2),
    }
    print(f"cache build: {cache_s:.1f} s for {len(paths)} images (one time)")
    print(f"baseline (PIL + DataLoader, batch 16, fp32): {baseline:.1f} img/s")
    print(f"ours (cached uint8 on {args.device}, batch {args.batch_size}): {ours:.1f} img/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
