"""One training loop for GPU and CPU: `fit` a model on the ImageData of a split, with augmentation as tensor ops,
bf16 or fp16 autocast per device, channels_last, optimisers and schedules, class imbalance handling, early stopping,
atomic checkpoints of the best epoch, and DDP under torchrun. `python -m helpers.train` trains one model.

Memory that fits: when the cost model (`helpers.models.profile`) says a training does not fit the memory it has on
its device, or a step runs out of CUDA memory, `fit` keeps the image caches in host memory and then splits each batch
into micro-batches with gradient accumulation (the same effective batch, optimizer steps and schedule).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .augment import AugmentConfig, augment_batch
from ..data.tensors import ImageData
from .inference import evaluate
from ..models import head_parameters, save_checkpoint
from ..models.profile import MemoryEstimate, largest_batch, profile_model, training_memory
from ..core.precision import AMP_MODES, autocast, depthwise_in_fp32, grad_scaler, resolve_amp

OPTIMIZERS = ("adam", "adamw", "adadelta")
SCHEDULES = ("constant", "cosine", "onecycle")
IMBALANCE = ("none", "weighted_loss", "balanced_sampling")
MONITORS = {"val_balanced_accuracy": "max", "val_accuracy": "max", "val_loss": "min"}
OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


@dataclass(frozen=True)
class TrainConfig:
    """Everything `fit` needs besides the model and the data; saved with every checkpoint."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    backbone_lr: float | None = None
    weight_decay: float = 1e-4
    adadelta_rho: float = 0.9
    adadelta_eps: float = 1e-6
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    imbalance: str = "none"
    class_weight_power: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    monitor: str = "val_balanced_accuracy"
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True
    amp: str = "auto"
    channels_last: bool = True
    compile: bool = False
    eval_batch_size: int = 256
    max_steps_per_epoch: int | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS), ("schedule", self.schedule, SCHEDULES),
                                     ("imbalance", self.imbalance, IMBALANCE), ("monitor", self.monitor, tuple(MONITORS)),
                                     ("amp", self.amp, AMP_MODES)):
            if value not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {', '.join(allowed)}; got {value!r}")
        from ..core.validate import check_bool, check_int, check_number

        for name in ("epochs", "batch_size", "eval_batch_size"):
            check_int(f"TrainConfig.{name}", getattr(self, name))
        for name in ("patience", "max_steps_per_epoch"):
            check_int(f"TrainConfig.{name}", getattr(self, name), optional=True)
        check_int("TrainConfig.seed", self.seed, minimum=0)
        for name in ("lr", "weight_decay", "class_weight_power", "min_delta"):
            check_number(f"TrainConfig.{name}", getattr(self, name))
        check_number("TrainConfig.backbone_lr", self.backbone_lr, optional=True)
        check_number("TrainConfig.label_smoothing", self.label_smoothing, maximum=1.0)
        check_number("TrainConfig.adadelta_rho", self.adadelta_rho, maximum=1.0)
        check_number("TrainConfig.adadelta_eps", self.adadelta_eps, above_minimum=True)
        for name in ("restore_best", "channels_last", "compile", "progress"):
            check_bool(f"TrainConfig.{name}", getattr(self, name))
        if not isinstance(self.augment, AugmentConfig):
            raise ValueError(f"TrainConfig.augment must be an AugmentConfig; got {self.augment!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON and checkpoints."""
        return dataclasses.asdict(self)


@dataclass
class FitResult:
    """What `fit` returns: per-epoch history, the best epoch and its monitored value."""

    history: pd.DataFrame
    best_epoch: int
    best_score: float
    stopped_early: bool
    checkpoint: Path | None
    wall_time_s: float
    amp: str  # the resolved mixed precision: bf16, fp16 or off
    micro_batch: int | None = None  # images per micro-batch when batches were split to fit memory, else None
    cache_on_host: bool = False  # whether fit moved the image caches from the device into host memory


def distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def class_weights(labels: torch.Tensor, num_classes: int, power: float = 1.0) -> torch.Tensor:
    """Inverse-frequency weights to the given power (0.5: square root), mean 1 over present classes, 0 for absent ones."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    present = counts > 0
    weights = torch.where(present, (counts.sum() / counts.clamp(min=1)) ** power, torch.zeros_like(counts))
    return weights * present.sum() / weights.sum()


def epoch_order(labels: torch.Tensor, imbalance: str, generator: torch.Generator) -> torch.Tensor:
    """Indices of one epoch: a permutation, or class-balanced draws with replacement."""
    n = len(labels)
    if imbalance == "balanced_sampling":
        per_image = class_weights(labels.cpu(), int(labels.max()) + 1)[labels.cpu()]
        return torch.multinomial(per_image, n, replacement=True, generator=generator)
    return torch.randperm(n, generator=generator)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or Adadelta; a separate learning rate for the backbone when backbone_lr is set."""
    net = model.net if hasattr(model, "net") else model
    head = {id(p) for p in head_parameters(net)}
    trainable = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) in head], "lr": config.lr},
              {"params": [p for p in trainable if id(p) not in head], "lr": config.backbone_lr or config.lr}]
    groups = [g for g in groups if g["params"]]
    # The fused kernels update every tensor in one pass; at small batches the optimizer step dominates.
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.Adadelta(groups, lr=config.lr, rho=config.adadelta_rho, eps=config.adadelta_eps,
                                weight_decay=config.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step schedule: constant, cosine decay to zero, or one-cycle."""
    if config.schedule == "onecycle" and total_steps >= 8:  # shorter runs have no room for a warm-up phase: cosine
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total_steps, pct_start=0.25,
                                                   cycle_momentum=config.optimizer != "adadelta")
    if config.schedule in ("cosine", "onecycle"):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


@dataclass
class _Steps:
    """What every training step of one fit uses besides the model and the data."""

    config: TrainConfig
    optimizer: torch.optim.Optimizer
    schedule: Any
    weight: torch.Tensor | None
    order_generator: torch.Generator
    augment_generator: torch.Generator
    amp: str
    scaler: torch.amp.GradScaler
    steps: int
    rank: int
    world: int
    bar: tqdm
    micro: int | None = None  # images per micro-batch; None: whole batches


def fit(model: nn.Module, train: ImageData, val: ImageData, config: TrainConfig,
        checkpoint_path: str | Path | None = None, run_config: dict[str, Any] | None = None,
        memory_budget: int | None = None) -> FitResult:
    """Train model on train, validate each epoch on val, keep the best epoch by config.monitor.

    The best weights are checkpointed when checkpoint_path is given and restored at the end
    unless config.restore_best is False (then the model keeps its last epoch, as the reference notebooks did).

    memory_budget: the bytes this training may use on train.device; None: on CUDA the free memory plus what the
    model and the image caches already hold there, on a CPU no limit. When the estimate exceeds it, the image
    caches move into host memory (train.images and val.images are replaced) and, if that is not enough, batches
    are split into micro-batches; a CUDA out-of-memory error in a step halves the micro-batch and redoes the step.
    Either prints one line; the result's micro_batch and cache_on_host say what was done.
    """
    from ..core.validate import check_int

    check_int("memory_budget", memory_budget, optional=True)
    rank, world = distributed()
    device = train.device
    torch.manual_seed(config.seed)
    order_generator = torch.Generator().manual_seed(config.seed)
    augment_generator = torch.Generator(device=device).manual_seed(config.seed + 1000 * rank)
    num_classes = len(getattr(model, "classes", [])) or int(train.labels.max()) + 1
    weight = (class_weights(train.labels, num_classes, config.class_weight_power).to(device)
              if config.imbalance == "weighted_loss" else None)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    amp = resolve_amp(config.amp, device)
    micro, on_host, message = plan_memory(model, train, val, config, amp, memory_budget, world)
    if message and rank == 0:
        print(message)
    optimizer = make_optimizer(model, config)
    train_model = _wrap(model, config, device, world)
    scaler = grad_scaler(amp, device)

    steps = steps_per_epoch(len(train), config)
    schedule = make_schedule(optimizer, config, steps * config.epochs)
    mode = MONITORS[config.monitor]
    best_score, best_epoch, best_state, stale, rows = -math.inf if mode == "max" else math.inf, 0, None, 0, []
    started = time.time()
    bar = tqdm(total=steps * config.epochs, desc="train", disable=not config.progress or rank != 0,
               mininterval=2.0, unit="batch", dynamic_ncols=True)
    run = _Steps(config, optimizer, schedule, weight, order_generator, augment_generator, amp, scaler, steps, rank,
                 world, bar, micro)
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.time()
        with depthwise_in_fp32(model, amp, device):
            train_loss, train_correct, seen = _train_epoch(train_model, train, run)
        train_time = time.time() - epoch_start
        result = evaluate(model, val, config.eval_batch_size, amp=amp, class_weight=weight)
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_correct / max(seen, 1),
               "val_loss": result["loss"], "val_accuracy": result["accuracy"],
               "val_balanced_accuracy": result["balanced_accuracy"], "lr": optimizer.param_groups[0]["lr"],
               "train_images": seen, "train_time_s": train_time, "epoch_time_s": time.time() - epoch_start}
        rows.append(row)
        score = row[config.monitor]
        improved = score > best_score + config.min_delta if mode == "max" else score < best_score - config.min_delta
        if improved:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            if checkpoint_path and rank == 0:
                save_checkpoint(model, checkpoint_path,
                                {"train": config.to_dict(), "amp_resolved": amp, "run": run_config or {}},
                                {"epoch": epoch, config.monitor: score})
        else:
            stale += 1
        bar.set_postfix(epoch=epoch, loss=f"{train_loss:.3f}", val_bacc=f"{row['val_balanced_accuracy']:.3f}", refresh=False)
        if config.patience is not None and stale >= config.patience:
            break
    bar.close()
    if config.restore_best and best_state is not None:
        model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    return FitResult(history, best_epoch, float(best_score), len(rows) < config.epochs,
                     Path(checkpoint_path) if checkpoint_path else None, time.time() - started, amp, run.micro, on_host)


def _wrap(model: nn.Module, config: TrainConfig, device: torch.device, world: int) -> nn.Module:
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(model) if config.compile else model


def steps_per_epoch(n: int, config: TrainConfig) -> int:
    """Training steps per epoch for n images: whole batches (a last partial one for small sets), capped."""
    steps = n // config.batch_size if n >= 2 * config.batch_size else math.ceil(n / config.batch_size)
    return min(steps, config.max_steps_per_epoch or steps)


def _train_epoch(model: nn.Module, data: ImageData, run: _Steps) -> tuple[float, int, int]:
    """One epoch of training steps: (mean training loss, correct predictions, images seen), over all ranks under DDP."""
    config = run.config
    model.train()
    # The order lives with the images, so that gathering a batch never waits on a device-to-host copy.
    order = epoch_order(data.labels, config.imbalance, run.order_generator).to(data.images.device)
    total_loss = torch.zeros((), device=data.device)
    correct = torch.zeros((), device=data.device, dtype=torch.long)
    seen = 0
    for step in range(run.steps):
        index = order[step * config.batch_size:(step + 1) * config.batch_size][run.rank::run.world]
        x, y = data.batch(index)
        x = augment_batch(x, config.augment, run.augment_generator)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss, hits = _backward_fitting(model, x, y, run)
        run.scaler.step(run.optimizer)  # skips the update when fp16 gradients overflowed
        run.scaler.update()
        _step_schedule(run.schedule, run.scaler)
        total_loss += loss * len(y)
        correct += hits
        seen += len(y)
        run.bar.update(1)
    if run.world > 1:  # each rank trained on its shard of every batch: the epoch's loss and hits are over all shards
        images = torch.tensor(float(seen), dtype=torch.float64, device=data.device)
        totals = torch.stack([total_loss.double(), correct.double(), images])
        dist.all_reduce(totals)
        total_loss, correct, seen = totals[0], int(totals[1].round()), int(totals[2].round())
    return float(total_loss) / max(seen, 1), int(correct), seen


def plan_memory(model: nn.Module, train: ImageData, val: ImageData, config: TrainConfig, amp: str,
                memory_budget: int | None, world: int = 1) -> tuple[int | None, bool, str | None]:
    """(micro-batch or None, caches moved to host, the line saying so) for a training within memory_budget bytes.

    None as budget: on CUDA the free memory plus what the model and the caches already hold there; elsewhere no
    limit (nothing is done). Caches on a CUDA device move first (into pinned host memory); then batches split.
    """
    device = train.device
    on_device = [data for data in (train, val) if data.images.device.type == "cuda"]
    cache = sum(data.images.numel() for data in on_device)
    if memory_budget is None:
        if device.type != "cuda":
            return None, False, None
        free, _ = torch.cuda.mem_get_info(device)
        held = sum(p.numel() * p.element_size() for p in model.parameters() if p.device.type == "cuda")
        memory_budget = free + held + cache
    side = int(train.images.shape[1])
    profile = profile_model(model, side)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) / max(profile.parameters, 1)
    batch = max(1, config.batch_size // world)

    def need(images: int, cached: int) -> MemoryEstimate:
        return training_memory(profile, images, amp, config.optimizer, cached, trainable)

    estimate = need(batch, cache)
    if estimate.total <= memory_budget:
        return None, False, None
    said = f"memory: training needs an estimated {estimate.gib:.1f} GiB of {memory_budget / 2**30:.1f} GiB on {device}"
    if cache:
        for data in on_device:
            images = data.images.cpu()
            data.images = images.pin_memory() if torch.cuda.is_available() else images
        if need(batch, 0).total <= memory_budget:
            return None, True, f"{said}: image caches kept in host memory"
    micro = largest_batch(profile, memory_budget, batch, amp, config.optimizer, 0, trainable)
    if micro < 1:
        raise RuntimeError(f"{said}: not even one image per step fits; use a smaller model or input size")
    where = "image caches kept in host memory; " if cache else ""
    return micro, bool(cache), (f"{said}: {where}batch {batch} as {math.ceil(batch / micro)} micro-batches of at most "
                                f"{micro} (same effective batch and schedule)")


def _loss(logits: torch.Tensor, y: torch.Tensor, run: _Steps) -> torch.Tensor:
    return F.cross_entropy(logits.float(), y, weight=run.weight, label_smoothing=run.config.label_smoothing)


def _loss_weight(y: torch.Tensor, run: _Steps) -> torch.Tensor:
    """What a batch's mean loss divides by: its images, or their class weights."""
    if run.weight is None:
        return torch.tensor(float(len(y)), device=y.device)
    return run.weight[y].sum()


def _backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, run: _Steps) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of one batch's loss (zeroed first), whole or as micro-batches; (its loss, correct predictions)."""
    run.optimizer.zero_grad(set_to_none=True)
    size = run.micro or len(y)
    if size >= len(y):
        with autocast(run.amp, x.device):
            logits = model(x)
        loss = _loss(logits, y, run)
        run.scaler.scale(loss).backward()  # the scaler is a pass-through unless amp is fp16
        return loss.detach(), (logits.argmax(1) == y).sum()
    # the batch loss is a weighted mean: each micro-batch's mean counts by its share of the batch's weight
    whole = _loss_weight(y, run)
    loss, hits = torch.zeros((), device=x.device), torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, len(y), size):
        part = slice(start, start + size)
        with autocast(run.amp, x.device):
            logits = model(x[part])
        share = _loss(logits, y[part], run) * (_loss_weight(y[part], run) / whole)
        run.scaler.scale(share).backward()
        loss += share.detach()
        hits += (logits.argmax(1) == y[part]).sum()
    return loss, hits


def _backward_fitting(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      run: _Steps) -> tuple[torch.Tensor, torch.Tensor]:
    """_backward, halving the micro-batch and redoing the batch whenever the device runs out of memory."""
    while True:
        try:
            return _backward(model, x, y, run)
        except OUT_OF_MEMORY:
            run.optimizer.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            current = run.micro or len(y)
            if current <= 1:
                raise RuntimeError("out of memory with one image per micro-batch: use a smaller model or input "
                                   "size") from None
            run.micro = current // 2
            if run.rank == 0:
                print(f"memory: out of memory with micro-batches of {current}: this batch again as micro-batches of "
                      f"{run.micro} (same effective batch and schedule)")


def _step_schedule(schedule: Any, scaler: torch.amp.GradScaler) -> None:
    if not scaler.is_enabled():
        schedule.step()
        return
    # The schedule counts every planned step, skipped or not; torch warns when the very first one was skipped.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`")
        schedule.step()
