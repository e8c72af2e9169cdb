"""A trained model applied to images: logits and probabilities (with flip TTA), and loss and accuracies on a split.

`fit` validates every epoch with `evaluate`, and the evaluation layer (`helpers.evaluation.splits`) builds on
`predict`, so this module sits between the models and training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from ..data.tensors import ImageData
from ..core.precision import autocast, resolve_amp


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256, tta: bool = False,
                   amp: str = "auto") -> torch.Tensor:
    """Logits (N, C) as float32 for uint8 images (N, H, W, 3); tta averages logits over 4 flips."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    resolved = resolve_amp(amp, device)
    outputs = []
    for start in range(0, len(images), batch_size):
        # Asynchronous from pinned memory (a slice of a pinned tensor stays pinned); a no-op on the CPU.
        x = images[start:start + batch_size].to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        views = [x, x.flip(3), x.flip(2), x.flip(2, 3)] if tta else [x]
        with autocast(resolved, device):
            logits = torch.stack([model(v).float() for v in views]).mean(0)
        outputs.append(logits.cpu())
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0)


def predict(model: nn.Module, images: torch.Tensor | np.ndarray, batch_size: int = 256, tta: bool = False,
            amp: str = "auto") -> np.ndarray:
    """Class probabilities (N, C) for uint8 images (N, H, W, 3), optionally with flip test-time augmentation."""
    images = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    return predict_logits(model, images, batch_size, tta, amp).softmax(1).numpy()


def evaluate(model: nn.Module, data: ImageData, batch_size: int = 256, tta: bool = False, amp: str = "auto",
             class_weight: torch.Tensor | None = None) -> dict[str, Any]:
    """Loss, accuracy and balanced accuracy on data, with the logits and probabilities."""
    logits = predict_logits(model, data.images, batch_size, tta, amp)
    labels = data.labels.cpu()
    loss = F.cross_entropy(logits, labels, weight=None if class_weight is None else class_weight.cpu()).item()
    predicted = logits.argmax(1).numpy()
    y = labels.numpy()
    return {"loss": loss, "accuracy": float((predicted == y).mean()),
            "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
            "logits": logits.numpy(), "probs": logits.softmax(1).numpy(), "labels": y}
