"""What a model costs per image: forward FLOPs, parameters and the activations training keeps for backward, and
from those the memory of a training at a batch size.

Counted in one forward pass of two images in training mode, on a copy of the model on the meta device (nothing is
computed or allocated, so even ViT-B/16 at 224 px takes a fraction of a second, and the model itself is untouched):
FLOPs under `torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add), activations under
`torch.autograd.graph.saved_tensors_hooks` (the tensors autograd keeps for the backward pass, fp32, each storage
counted once; the parameters and buffers it keeps are not activations and are left out).
"""

from __future__ import annotations

import bisect
import copy
import functools
import hashlib
import inspect
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..core.io import write_json

PROFILE_VERSION = 2
N_PROBE = 2  # images in the counted forward pass
PROFILE_CLASSES = 7  # the head `profile` builds: HAM10000's seven diagnoses


@dataclass(frozen=True)
class ModelProfile:
    """A model at one input size: forward FLOPs and activation bytes per image (fp32), and its parameters."""

    model: str
    image_size: int
    forward_flops: int
    parameters: int
    activation_bytes: int


def profile_model(model: nn.Module, image_size: int, name: str | None = None) -> ModelProfile:
    """Count one training-mode forward pass of two image_size x image_size images through a meta copy of model.

    forward_flops and activation_bytes are per image. The model (meta or real) keeps its weights, buffers (batch-norm
    running statistics) and train/eval mode: only its meta copy runs.
    """
    probe = meta_copy(model)
    was_training = probe.training
    held = {id(t) for t in (*probe.parameters(), *probe.buffers())}
    seen: set[int] = set()
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        key = id(tensor._base if tensor._base is not None else tensor)  # views share their base's storage
        if key not in seen and key not in held and id(tensor) not in held:
            seen.add(key)
            saved += tensor.numel() * tensor.element_size()
        return tensor

    x = torch.zeros(N_PROBE, 3, image_size, image_size, device="meta")
    probe.train()
    try:
        with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            probe(x)
    finally:
        probe.train(was_training)  # probe is the model itself when that is on meta
    parameters = sum(p.numel() for p in probe.parameters())
    return ModelProfile(name or _name(model), int(image_size), int(counter.get_total_flops()) // N_PROBE,
                        int(parameters), saved // N_PROBE)


def meta_copy(model: nn.Module) -> nn.Module:
    """model itself when it is on the meta device, else a copy on meta (its tensors are never copied)."""
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device.type == "meta" for t in tensors):
        return model
    memo: dict[int, Any] = {}
    for parameter in model.parameters():
        memo[id(parameter)] = nn.Parameter(torch.empty_like(parameter, device="meta"), parameter.requires_grad)
    for buffer in model.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(model, memo)


def _name(model: nn.Module) -> str:
    from .registry import model_spec

    try:
        return model_spec(model)["name"]
    except (ValueError, KeyError, AttributeError):
        return type(model).__name__


@functools.lru_cache(maxsize=None)
def profile(name: str, image_size: int) -> ModelProfile:
    """The profile of registry model `name` at image_size (7 classes), from the disk cache or counted on meta.

    Kept in models_home()/profiles.json; a missing or corrupt cache, or one counted by another torch or another
    version of profile_model, is counted again and rewritten.
    """
    from ..data.source import models_home

    path = models_home() / "profiles.json"
    key = f"{name}@{int(image_size)}"
    cached = _read(path)
    if key in cached:
        try:
            return ModelProfile(**cached[key])
        except TypeError:
            pass  # an entry of another shape: counted again below
    from .classifier import build_classifier

    with torch.device("meta"):
        model = build_classifier(name, [f"c{i}" for i in range(PROFILE_CLASSES)], image_size, pretrained=False)
    counted = profile_model(model, image_size, name)
    cached[key] = asdict(counted)
    try:
        write_json({"version": cache_version(), "profiles": cached}, path)
    except OSError:
        pass  # a read-only models folder: the profile is still counted, only not kept
    return counted


@functools.lru_cache(maxsize=1)
def cache_version() -> str:
    """What a cached profile must have been counted with: this version, torch's, and profile_model's own source."""
    source = hashlib.sha256(inspect.getsource(profile_model).encode()).hexdigest()[:12]
    return f"{PROFILE_VERSION}/torch-{torch.__version__}/{source}"


def _read(path: Path) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        profiles = values["profiles"] if values.get("version") == cache_version() else {}
        return {k: v for k, v in profiles.items() if isinstance(v, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


@dataclass(frozen=True)
class MemoryEstimate:
    """The parts of a training's peak memory, in bytes."""

    weights: int
    gradients: int
    optimizer_state: int
    activations: int
    image_cache: int
    workspace: int

    @property
    def total(self) -> int:
        """Every part added up."""
        return (self.weights + self.gradients + self.optimizer_state + self.activations + self.image_cache
                + self.workspace)

    @property
    def gib(self) -> float:
        """The total in GiB."""
        return self.total / 2**30


OPTIMIZER_BYTES = {"adam": 8, "adamw": 8, "adadelta": 8, "sgd": 4}  # state per parameter: two fp32 tensors
HALF_PRECISION_SHARE = 0.5  # saved activations under fp16/bf16 autocast, against fp32
WORKSPACE_MARGIN = 0.2  # allocator fragmentation and kernel workspaces, as a share of the activations


def training_memory(profile: ModelProfile, batch_size: int, amp: str, optimizer: str = "adamw", cache_bytes: int = 0,
                    trainable_fraction: float = 1.0) -> MemoryEstimate:
    """A training's peak memory at batch_size images per step.

    Assumed: fp32 weights (4 B per parameter) and fp32 gradients (4 B per trainable parameter); optimiser state of
    8 B per trainable parameter for Adam, AdamW (two moments) and Adadelta (two running averages); the saved
    activations of the batch, x 0.5 under fp16/bf16 autocast (most saved tensors are half precision there); a 20%
    allocator and workspace margin on the activations; and the image cache as given (uint8 N x H x W x 3).
    """
    weights = 4 * profile.parameters
    trainable = int(profile.parameters * trainable_fraction)
    activations = int(profile.activation_bytes * batch_size * (HALF_PRECISION_SHARE if amp in ("fp16", "bf16") else 1.0))
    return MemoryEstimate(weights, 4 * trainable, OPTIMIZER_BYTES.get(optimizer, 8) * trainable, activations,
                          int(cache_bytes), int(WORKSPACE_MARGIN * activations))


def largest_batch(profile: ModelProfile, budget: int, batch_size: int, amp: str, optimizer: str = "adamw",
                  cache_bytes: int = 0, trainable_fraction: float = 1.0) -> int:
    """The largest batch of at most batch_size whose training_memory fits in budget bytes; 0 when not even one does."""
    def total(batch: int) -> int:
        return training_memory(profile, batch, amp, optimizer, cache_bytes, trainable_fraction).total

    return bisect.bisect_right(range(1, batch_size + 1), budget, key=total)


def image_cache_bytes(n_images: int, image_size: int) -> int:
    """Bytes of a uint8 image cache of n_images at image_size x image_size x 3."""
    return int(n_images) * 3 * int(image_size) ** 2
