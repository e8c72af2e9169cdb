"""A linear probe on cached frozen features: the backbone runs once over each split, a logistic regression trains
on its pooled features in seconds, and the result is an ordinary Classifier whose head holds the fitted layer.

`extract_features` runs the frozen network (eval mode, the head's input is the feature) over uint8 images at an
input size (resized on the fly when it differs from the images'), and keeps the features in memory and, given
a cache_dir, on disk: the file name carries a fingerprint of the backbone's weights, the normalisation, the
images and the input size, and is written atomically. `fit_logistic` fits multinomial logistic regression by
full-batch L-BFGS on standardised features for each weight decay of a grid (strongest first, each warm-started
from the last) and keeps the one with the best validation balanced accuracy. `linear_probe` does both for a
Classifier and writes the chosen layer (standardisation folded in) into the Classifier's own head, so that
predict, evaluate_split and checkpoints work unchanged.
"""

from __future__ import annotations

import hashlib
import pickle
import time
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score
from torch import nn

from ..data.tensors import ImageData
from ..core.io import atomic_path
from ..models import head_module, model_spec
from ..core.precision import autocast, resolve_amp
from .loop import TrainConfig, class_weights
from ..core.validate import check_int, check_number

FEATURES_VERSION = 1  # part of every fingerprint: bump when extraction changes
WEIGHT_DECAYS: tuple[float, ...] = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
MEMORY_ENTRIES = 4  # feature sets kept in memory, the most recently used
_MEMORY: OrderedDict[str, torch.Tensor] = OrderedDict()


@dataclass
class ProbeResult:
    """What `linear_probe` returns: the Classifier with its fitted head, the chosen decay and the search."""

    model: nn.Module
    weight_decay: float
    search: pd.DataFrame  # one row per weight decay: val_balanced_accuracy, val_loss, train_loss, iterations
    feature_dim: int
    input_size: int
    extract_time_s: float
    fit_time_s: float


def linear_head(model: nn.Module) -> nn.Linear:
    """The Linear layer of model's head: the head itself, or a head of parameter-free layers ending in one Linear."""
    head = head_module(model)
    if isinstance(head, nn.Linear):
        return head
    layers = list(head.children()) if isinstance(head, nn.Sequential) else []
    if layers and isinstance(layers[-1], nn.Linear) and not any(list(m.parameters()) for m in layers[:-1]):
        return layers[-1]
    raise ValueError(f"a linear probe needs a model whose head is one linear layer; {_name(model)}'s head is "
                     f"{type(head).__name__} with {sum(p.numel() for p in head.parameters())} parameters")


def feature_fingerprint(model: nn.Module, images: torch.Tensor, input_size: int, precision: str = "off") -> str:
    """Hash of the backbone's weights and buffers (not the head's), the normalisation, the images, the input size
    and the resolved mixed precision (bf16 features differ from fp32 ones in their last bits)."""
    net = getattr(model, "net", model)
    head = head_module(net)
    prefixes = tuple(f"{name}." for name, module in net.named_modules() if module is head)
    digest = hashlib.blake2b(f"v{FEATURES_VERSION}|{_name(model)}|{input_size}|{precision}".encode(), digest_size=12)
    for key, value in model.state_dict().items():  # a Classifier's mean and std, then net.*
        if not key.removeprefix("net.").startswith(prefixes):
            digest.update(key.encode())
            digest.update(_bytes(value))
    digest.update(str(tuple(images.shape)).encode())
    digest.update(_bytes(images))
    return digest.hexdigest()


def extract_features(model: nn.Module, images: torch.Tensor, input_size: int | None = None, batch_size: int = 256,
                     amp: str = "auto", cache_dir: str | Path | None = None, name: str = "features") -> torch.Tensor:
    """Pooled features (N, D) float32 on the CPU: what model's head sees for uint8 images (N, H, W, 3).

    Each batch is resized to input_size x input_size (bilinear, antialiased when shrinking) when that differs from
    the images' side. The model runs in eval mode under no_grad (the pretrained batch-norm statistics). Features
    are kept in memory and, given cache_dir, in a file named by their fingerprint.
    """
    input_size = check_int("input_size", input_size if input_size is not None else images.shape[1])
    precision = resolve_amp(amp, next(model.parameters()).device)
    key = feature_fingerprint(model, images, input_size, precision)
    path = Path(cache_dir) / f"{name}-{input_size}px-{key}.pt" if cache_dir is not None else None
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    features = _read_features(path) if path is not None else None
    if features is None or features.ndim != 2 or len(features) != len(images):
        features = _run_backbone(model, images, input_size, batch_size, precision)
        if path is not None:
            with atomic_path(path) as tmp:
                torch.save(features, tmp)
    _remember(key, features)
    return features


def fit_logistic(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                 num_classes: int, weight_decays: Sequence[float] = WEIGHT_DECAYS,
                 class_weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 max_iter: int = 100) -> tuple[nn.Linear, float, pd.DataFrame]:
    """Multinomial logistic regression on features: (the layer for raw features, the chosen decay, the search).

    Features are standardised with the training mean and spread; each decay (an L2 penalty decay/2 * |W|^2 on the
    weights, not the bias, added to the mean cross-entropy) is fitted by full-batch L-BFGS, strongest first, each
    warm-started from the last. The decay with the best validation balanced accuracy wins (ties: the stronger).
    """
    decays = sorted((check_number("weight_decays", d) for d in weight_decays), reverse=True)
    if not decays:
        raise ValueError("weight_decays must name at least one weight decay")
    check_int("max_iter", max_iter)
    train_x, val_x = train_x.float(), val_x.float()
    train_y, val_y = train_y.long().cpu(), val_y.long().cpu()
    mean, spread = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    z_train, z_val = (train_x - mean) / spread, (val_x - mean) / spread
    weight = torch.zeros(num_classes, train_x.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    cw = class_weight.float().cpu() if class_weight is not None else None
    rows, best = [], None
    for decay in decays:
        iterations = _lbfgs(z_train, train_y, weight, bias, decay, cw, label_smoothing, max_iter)
        with torch.no_grad():
            train_loss = F.cross_entropy(z_train @ weight.T + bias, train_y, weight=cw, label_smoothing=label_smoothing)
            val_logits = z_val @ weight.T + bias
            val_loss = F.cross_entropy(val_logits, val_y, weight=cw).item() if len(val_y) else float("nan")
            score = (float(balanced_accuracy_score(val_y.numpy(), val_logits.argmax(1).numpy()))
                     if len(val_y) else float("nan"))
        rows.append({"weight_decay": decay, "val_balanced_accuracy": score, "val_loss": val_loss,
                     "train_loss": float(train_loss), "iterations": iterations})
        if best is None or score > best[0]:
            best = (score, decay, weight.detach().clone(), bias.detach().clone())
    _, chosen, w, b = best
    layer = nn.Linear(train_x.shape[1], num_classes)
    with torch.no_grad():  # fold the standardisation in: W (x - m) / s + b = (W / s) x + (b - (W / s) m)
        layer.weight.copy_(w / spread)
        layer.bias.copy_(b - (w / spread) @ mean)
    return layer, chosen, pd.DataFrame(rows)


def linear_probe(model: nn.Module, train: ImageData, val: ImageData, config: TrainConfig | None = None,
                 input_size: int | None = None, weight_decays: Sequence[float] = WEIGHT_DECAYS,
                 cache_dir: str | Path | None = None, name: str = "features", max_iter: int = 100) -> ProbeResult:
    """Fit model's head as a logistic regression on its frozen features of train, the decay chosen on val.

    config (an arm's TrainConfig; default TrainConfig()) gives the imbalance handling (weighted_loss and
    balanced_sampling both weigh classes by inverse frequency to class_weight_power), label smoothing, batch size
    for extraction and mixed precision. The head's weights are replaced in place and the model is returned in
    eval mode, its image_size set to input_size: feed it images of that size (a cache at that size, or the files,
    as helpers.predict does); its backbone is untouched.
    """
    config = config or TrainConfig(progress=False)
    input_size = check_int("input_size", input_size if input_size is not None else train.images.shape[1])
    head = linear_head(model)
    num_classes = head.out_features
    started = time.time()
    kwargs = {"input_size": input_size, "batch_size": config.eval_batch_size, "amp": config.amp,
              "cache_dir": cache_dir}
    train_x = extract_features(model, train.images, name=f"{name}-train", **kwargs)
    val_x = extract_features(model, val.images, name=f"{name}-val", **kwargs)
    extracted = time.time()
    weight = (class_weights(train.labels.cpu(), num_classes, config.class_weight_power)
              if config.imbalance != "none" else None)
    layer, decay, search = fit_logistic(train_x, train.labels, val_x, val.labels, num_classes, weight_decays,
                                        weight, config.label_smoothing, max_iter)
    with torch.no_grad():
        head.weight.copy_(layer.weight.to(head.weight))
        head.bias.copy_(layer.bias.to(head.bias))
    if hasattr(model, "image_size"):
        model.image_size = input_size
    return ProbeResult(model.eval(), decay, search, train_x.shape[1], input_size, extracted - started,
                       time.time() - extracted)


def _read_features(path: Path) -> torch.Tensor | None:
    """The features saved at path, or None when the file is missing or unreadable (they are then extracted again)."""
    if not path.exists():
        return None
    try:
        features = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile):
        return None
    return features if isinstance(features, torch.Tensor) else None


def _run_backbone(model: nn.Module, images: torch.Tensor, input_size: int, batch_size: int,
                  resolved: str) -> torch.Tensor:
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    hook = head_module(model).register_forward_pre_hook(lambda _, inputs: captured.append(inputs[0].flatten(1)))
    was_training = model.training
    model.eval()
    outputs = []
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                x = images[start:start + batch_size].to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
                if x.shape[-1] != input_size or x.shape[-2] != input_size:
                    x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", align_corners=False,
                                      antialias=input_size < max(x.shape[-2:]))
                with autocast(resolved, device):
                    model(x)
                outputs.append(captured.pop().float().cpu())
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0, linear_head(model).in_features)


def _lbfgs(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, decay: float,
           class_weight: torch.Tensor | None, label_smoothing: float, max_iter: int) -> int:
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                                  tolerance_grad=1e-6, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y, weight=class_weight, label_smoothing=label_smoothing)
        loss = loss + 0.5 * decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return int(optimizer.state[optimizer.param_groups[0]["params"][0]].get("n_iter", 0))


def _remember(key: str, features: torch.Tensor) -> None:
    _MEMORY[key] = features
    while len(_MEMORY) > MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)


def _bytes(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's memory as a flat uint8 array (no copy for a contiguous CPU tensor), for hashing."""
    array = tensor.detach().cpu().contiguous()
    if array.dtype == torch.bfloat16:
        array = array.view(torch.int16)
    return array.numpy().reshape(-1).view(np.uint8)


def _name(model: nn.Module) -> str:
    try:
        return model_spec(model)["name"]
    except ValueError:
        return type(model).__name__
