"""One training loop for GPU and CPU: `fit` a model on the ImageData of a split, with augmentation as tensor ops,
bf16 or fp16 autocast per device, channels_last, optimisers and schedules, class imbalance handling, early stopping,
atomic checkpoints of the best epoch, and DDP under torchrun. `python -m helpers.train` trains one model.

Levers for short runs, each off by default (TrainConfig's defaults train exactly as before they existed):
an exponential moving average of the weights (`ema_decay`), progressive resizing (`progressive`), a linear
warm-up of the schedule (`warmup_epochs`), per-layer learning-rate decay (`layer_decay`), and Mixup / CutMix
with a loss on soft targets (`mixup_alpha`, `cutmix_alpha`, `mix_prob`).

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
from numbers import Real
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from .augment import AugmentConfig, augment_batch, mix_batch
from ..data.tensors import ImageData, default_device
from .inference import evaluate
from ..models import head_parameters, model_spec, save_checkpoint
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
    # Levers, each off by default. ema_decay: evaluate, checkpoint and keep an exponential moving average of the
    # weights (BN statistics averaged too), updated every step; its horizon is about 1 / (1 - ema_decay) steps.
    ema_decay: float | None = None
    # (epochs, scale) phases trained at scale x the images' side (rounded to 8 px); the rest, and always the last
    # epoch, at full size; validation always at full size. Needs a model that takes any input size.
    progressive: tuple[tuple[int, float], ...] = ()
    warmup_epochs: float = 0.0  # a linear rise over the first epochs (fractions allowed) of a cosine or constant schedule
    layer_decay: float | None = None  # backbone unit k from the head trains at (backbone_lr or lr) * layer_decay**k
    mixup_alpha: float = 0.0  # Mixup with lam ~ Beta(alpha, alpha) per batch; 0 is off
    cutmix_alpha: float = 0.0  # CutMix likewise; with both set, each mixed batch picks one at even odds
    mix_prob: float = 1.0  # the share of batches mixed when mixup_alpha or cutmix_alpha is set

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
        self._check_levers()

    def _check_levers(self) -> None:
        from ..core.validate import check_number

        decay = self.ema_decay
        if decay is not None and (isinstance(decay, bool) or not isinstance(decay, Real) or not 0 <= decay < 1):
            raise ValueError(f"TrainConfig.ema_decay must be a number >= 0 and < 1, or None; got {decay!r}")
        object.__setattr__(self, "progressive", _checked_phases(self.progressive))
        check_number("TrainConfig.warmup_epochs", self.warmup_epochs)
        if self.warmup_epochs and self.schedule == "onecycle":
            raise ValueError("TrainConfig.warmup_epochs needs schedule 'cosine' or 'constant': 'onecycle' warms up "
                             f"by itself; got warmup_epochs={self.warmup_epochs!r}")
        check_number("TrainConfig.layer_decay", self.layer_decay, above_minimum=True, maximum=1.0, optional=True)
        for name in ("mixup_alpha", "cutmix_alpha"):
            check_number(f"TrainConfig.{name}", getattr(self, name))
        check_number("TrainConfig.mix_prob", self.mix_prob, maximum=1.0)

    @property
    def mixes(self) -> bool:
        """Whether batches are mixed (Mixup or CutMix) and the loss is on soft targets."""
        return bool(self.mixup_alpha or self.cutmix_alpha) and self.mix_prob > 0

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


def _checked_phases(value: Any) -> tuple[tuple[int, float], ...]:
    """progressive as a tuple of (epochs, scale) pairs (a JSON list of lists reads back the same); else ValueError."""
    from ..core.validate import check_int, check_number

    name = "TrainConfig.progressive"
    if not isinstance(value, (tuple, list)) or any(not isinstance(p, (tuple, list)) or len(p) != 2 for p in value):
        raise ValueError(f"{name} must be (epochs, scale) pairs, e.g. ((2, 0.5), (2, 0.75)); got {value!r}")
    return tuple((check_int(f"{name} epochs", epochs), check_number(f"{name} scale", scale, above_minimum=True,
                                                                    maximum=1.0)) for epochs, scale in value)


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


def backbone_units(net: nn.Module) -> list[list[nn.Parameter]]:
    """The backbone's trainable parameters by unit, input side first, for layer decay.

    The units are the network's top-level children in order, except that a Sequential or ModuleList among them
    (ResNet's layer1..4, EfficientNet's features or _blocks, the CNNs' features) stands for its own children:
    so the units are a CNN's blocks or stages. The head's parameters are left out, and parameters of the network
    itself (a ViT's class token and position embedding) join the first unit.
    """
    head = {id(p) for p in head_parameters(net)}
    modules: list[nn.Module] = []
    for child in net.children():
        modules += list(child.children()) if isinstance(child, (nn.Sequential, nn.ModuleList)) else [child]
    seen, units = set(head), []
    for module in modules:
        unit = [p for p in module.parameters() if p.requires_grad and id(p) not in seen]
        seen |= {id(p) for p in unit}
        if unit:
            units.append(unit)
    loose = [p for p in net.parameters() if p.requires_grad and id(p) not in seen]
    if loose:
        units = [loose + (units[0] if units else []), *units[1:]]
    return units


def layer_decay_groups(net: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """Parameter groups: the head at lr (depth 0), backbone unit k from the head at (backbone_lr or lr) * decay**k."""
    head = [p for p in head_parameters(net) if p.requires_grad]
    units = backbone_units(net)
    base = config.backbone_lr or config.lr
    groups = [{"params": head, "lr": config.lr, "depth": 0}] if head else []
    for index, unit in enumerate(units):
        depth = len(units) - index
        groups.append({"params": unit, "lr": base * config.layer_decay ** depth, "depth": depth})
    return groups


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or Adadelta; a separate learning rate for the backbone when backbone_lr is set, decayed per
    backbone unit when layer_decay is set."""
    net = model.net if hasattr(model, "net") else model
    if config.layer_decay is not None:
        groups = layer_decay_groups(net, config)
    else:
        head = {id(p) for p in head_parameters(net)}
        trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        groups = [{"params": [p for n, p in trainable if id(p) in head], "lr": config.lr}]
        groups.append({"params": [p for n, p in trainable if id(p) not in head], "lr": config.backbone_lr or config.lr})
        groups = [g for g in groups if g["params"]]
    # The fused kernels update every tensor in one pass; at small batches the optimizer step dominates.
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.Adadelta(groups, lr=config.lr, rho=config.adadelta_rho, eps=config.adadelta_eps,
                                weight_decay=config.weight_decay)


def warmup_steps(config: TrainConfig, total_steps: int) -> int:
    """The steps of the linear warm-up: warmup_epochs of the run's steps, always leaving at least one step after it."""
    return max(min(round(config.warmup_epochs * total_steps / config.epochs), total_steps - 1), 0)


def make_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """A per-step schedule: constant, cosine decay to zero, or one-cycle; cosine and constant after a linear warm-up
    (step s of w at (s + 1) / w of the rate) when warmup_epochs is set."""
    warmup = warmup_steps(config, total_steps)
    if warmup and config.schedule != "onecycle":
        cosine = config.schedule == "cosine"
        rest = total_steps - warmup

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / rest)) if cosine else 1.0

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    if config.schedule == "onecycle" and total_steps >= 8:  # shorter runs have no room for a warm-up phase: cosine
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                   total_steps=total_steps, pct_start=0.25,
                                                   cycle_momentum=config.optimizer != "adadelta")
    if config.schedule in ("cosine", "onecycle"):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None,
                       label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against soft targets (N, C), with label smoothing and class weights as F.cross_entropy applies
    them to hard labels: one-hot targets give its value.

    Smoothing puts label_smoothing / C into every target; image n's loss weighs class c by weight[c], and the mean
    divides by the images' own weights (each its target's weighted sum, for one-hot targets its class's weight).
    """
    smoothed = targets * (1 - label_smoothing) + label_smoothing / logits.shape[1]
    log_p = F.log_softmax(logits, 1)
    if weight is None:
        return -(smoothed * log_p).sum(1).mean()
    return -(smoothed * log_p * weight).sum() / (targets * weight).sum()


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of model's weights and buffers (torch's AveragedModel): w <- decay w + (1 - decay) w_t.

    Its first update copies the weights. The batch-norm running statistics are averaged like the weights
    (use_buffers, as timm's ModelEma does): the live model's statistics belong to the live weights, while the
    averaged ones trail the weights by the same horizon as the averaged weights.
    """
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def ema_weights(ema: AveragedModel, model: nn.Module) -> nn.Module:
    """The averaged model, ready to evaluate or save: integer buffers (batch-norm batch counters) copied from model."""
    for averaged, live in zip(ema.module.buffers(), model.buffers()):
        if not averaged.is_floating_point():
            averaged.copy_(live)
    return ema.module


def progressive_size(scale: float, side: int) -> int:
    """The input side for scale x side: rounded to a multiple of 8 px, at least 8, at most side."""
    return min(side, max(8, round(scale * side / 8) * 8))


def epoch_sizes(config: TrainConfig, size: tuple[int, int]) -> list[tuple[int, int]]:
    """The training input size (height, width) of every epoch: config.progressive's phases, then full size.

    The last epoch always trains at full size: phases that would reach it are cut short (a run capped to fewer
    epochs, such as a check run, keeps its first phases).
    """
    sizes = [tuple(progressive_size(scale, side) for side in size) for epochs, scale in config.progressive
             for _ in range(epochs)][:config.epochs - 1]
    return sizes + [tuple(size)] * (config.epochs - len(sizes))


def check_input_sizes(model: nn.Module, sizes: set[tuple[int, int]]) -> None:
    """ValueError naming the model when it does not take inputs of these sizes (ViTs, Mixers and reference_cnn
    are built for one size); tried with one blank image each, in eval mode, so nothing in the model changes."""
    parameter = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for height, width in sorted(sizes):
                try:
                    model(torch.zeros(1, 3, height, width, device=parameter.device))
                except (RuntimeError, ValueError, AssertionError, TypeError) as err:
                    raise ValueError(
                        f"TrainConfig.progressive: {_model_name(model)} does not take {height}x{width} inputs "
                        f"({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}); progressive "
                        "resizing needs a model that takes any input size (a CNN with global pooling), not a ViT, "
                        "a Mixer or reference_cnn") from err
    finally:
        model.train(was_training)


def _model_name(model: nn.Module) -> str:
    try:
        return model_spec(model)["name"]
    except ValueError:
        return type(model).__name__


@dataclass
class _Steps:
    """What every training step of one fit uses besides the model and the data."""

    config: TrainConfig
    optimizer: torch.optim.Optimizer
    schedule: Any
    weight: torch.Tensor | None
    order_generator: torch.Generator
    augment_generator: torch.Generator
    mix_generator: torch.Generator
    amp: str
    scaler: torch.amp.GradScaler
    steps: int
    rank: int
    world: int
    num_classes: int
    bar: tqdm
    ema: AveragedModel | None
    live: nn.Module  # the model the EMA averages (not its DDP or compiled wrapper)
    micro: int | None = None  # images per micro-batch; None: whole batches


def fit(model: nn.Module, train: ImageData, val: ImageData, config: TrainConfig,
        checkpoint_path: str | Path | None = None, run_config: dict[str, Any] | None = None,
        memory_budget: int | None = None) -> FitResult:
    """Train model on train, validate each epoch on val, keep the best epoch by config.monitor.

    The best weights are checkpointed when checkpoint_path is given and restored at the end
    unless config.restore_best is False (then the model keeps its last epoch, as the reference notebooks did).
    With ema_decay, the averaged weights are the ones validated, checkpointed, restored and kept. With progressive,
    the history gains an image_size column (each epoch's training input side).

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
    mix_generator = torch.Generator().manual_seed(config.seed + 500 + 1000 * rank)  # on the host: no GPU sync
    num_classes = len(getattr(model, "classes", [])) or int(train.labels.max()) + 1
    weight = (class_weights(train.labels, num_classes, config.class_weight_power).to(device)
              if config.imbalance == "weighted_loss" else None)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    full_size = (train.images.shape[1], train.images.shape[2])
    sizes = epoch_sizes(config, full_size)
    if config.progressive:
        check_input_sizes(model, set(sizes) - {full_size})
    amp = resolve_amp(config.amp, device)
    micro, on_host, message = plan_memory(model, train, val, config, amp, memory_budget, world)
    if message and rank == 0:
        print(message)
    optimizer = make_optimizer(model, config)
    ema = make_ema(model, config.ema_decay) if config.ema_decay is not None else None
    train_model = _wrap(model, config, device, world)
    scaler = grad_scaler(amp, device)

    steps = steps_per_epoch(len(train), config)
    schedule = make_schedule(optimizer, config, steps * config.epochs)
    mode = MONITORS[config.monitor]
    best_score, best_epoch, best_state, stale, rows = -math.inf if mode == "max" else math.inf, 0, None, 0, []
    started = time.time()
    bar = tqdm(total=steps * config.epochs, desc="train", disable=not config.progress or rank != 0,
               mininterval=2.0, unit="batch", dynamic_ncols=True)
    run = _Steps(config, optimizer, schedule, weight, order_generator, augment_generator, mix_generator, amp, scaler,
                 steps, rank, world, num_classes, bar, ema, model, micro)
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.time()
        size = sizes[epoch - 1]
        with depthwise_in_fp32(model, amp, device):
            train_loss, train_correct, seen = _train_epoch(train_model, train, run, None if size == full_size else size)
        train_time = time.time() - epoch_start
        scored = model if ema is None else ema_weights(ema, model)
        result = evaluate(scored, val, config.eval_batch_size, amp=amp, class_weight=weight)
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_correct / max(seen, 1),
               "val_loss": result["loss"], "val_accuracy": result["accuracy"],
               "val_balanced_accuracy": result["balanced_accuracy"], "lr": optimizer.param_groups[0]["lr"],
               "train_images": seen * world, "train_time_s": train_time, "epoch_time_s": time.time() - epoch_start}
        if config.progressive:
            row["image_size"] = size[0]
        rows.append(row)
        score = row[config.monitor]
        improved = score > best_score + config.min_delta if mode == "max" else score < best_score - config.min_delta
        if improved:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in scored.state_dict().items()})
            if checkpoint_path and rank == 0:
                save_checkpoint(scored, checkpoint_path,
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
    elif ema is not None:
        model.load_state_dict(ema_weights(ema, model).state_dict())  # the last averaged weights, not the live ones
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


def _train_epoch(model: nn.Module, data: ImageData, run: _Steps, size: tuple[int, int] | None) -> tuple[float, int, int]:
    """One epoch of training steps; size (height, width), when given, is the input size batches are shrunk to."""
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
        if size is not None:  # progressive resizing: shrink first, so that augmentation runs at the smaller size
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        x = augment_batch(x, config.augment, run.augment_generator)
        targets = None
        if config.mixes:
            x, targets = mix_batch(x, y, run.num_classes, config.mixup_alpha, config.cutmix_alpha, config.mix_prob,
                                   run.mix_generator)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss, hits = _backward_fitting(model, x, y, targets, run)
        run.scaler.step(run.optimizer)  # skips the update when fp16 gradients overflowed
        run.scaler.update()
        _step_schedule(run.schedule, run.scaler)
        if run.ema is not None:
            run.ema.update_parameters(run.live)
        total_loss += loss * len(y)
        correct += hits
        seen += len(y)
        run.bar.update(1)
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


def _loss(logits: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None, run: _Steps) -> torch.Tensor:
    config = run.config
    if targets is None:
        return F.cross_entropy(logits.float(), y, weight=run.weight, label_smoothing=config.label_smoothing)
    return soft_cross_entropy(logits.float(), targets, run.weight, config.label_smoothing)


def _loss_weight(y: torch.Tensor, targets: torch.Tensor | None, run: _Steps) -> torch.Tensor:
    """What a batch's mean loss divides by: its images, or their class weights (soft targets: weighted targets)."""
    if run.weight is None:
        return torch.tensor(float(len(y)), device=y.device)
    return (targets * run.weight).sum() if targets is not None else run.weight[y].sum()


def _backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None,
              run: _Steps) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of one batch's loss (zeroed first), whole or as micro-batches; (its loss, correct predictions)."""
    run.optimizer.zero_grad(set_to_none=True)
    size = run.micro or len(y)
    if size >= len(y):
        with autocast(run.amp, x.device):
            logits = model(x)
        loss = _loss(logits, y, targets, run)
        run.scaler.scale(loss).backward()  # the scaler is a pass-through unless amp is fp16
        return loss.detach(), (logits.argmax(1) == y).sum()  # against each image's own label, mixed or not
    # the batch loss is a weighted mean: each micro-batch's mean counts by its share of the batch's weight
    whole = _loss_weight(y, targets, run)
    loss, hits = torch.zeros((), device=x.device), torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, len(y), size):
        part = slice(start, start + size)
        soft = None if targets is None else targets[part]
        with autocast(run.amp, x.device):
            logits = model(x[part])
        share = _loss(logits, y[part], soft, run) * (_loss_weight(y[part], soft, run) / whole)
        run.scaler.scale(share).backward()
        loss += share.detach()
        hits += (logits.argmax(1) == y[part]).sum()
    return loss, hits


def _backward_fitting(model: nn.Module, x: torch.Tensor, y: torch.Tensor, targets: torch.Tensor | None,
                      run: _Steps) -> tuple[torch.Tensor, torch.Tensor]:
    """_backward, halving the micro-batch and redoing the batch whenever the device runs out of memory."""
    while True:
        try:
            return _backward(model, x, y, targets, run)
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
