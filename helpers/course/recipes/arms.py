"""The typed records of a recipe: an Arm (one model trained one way) and a notebook's recipes per preset."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...training.loop import TrainConfig
from ...core.validate import check_bool, check_int

CHECK_EPOCHS = 2  # a check run's cap on every epoch count of a recipe


@dataclass(frozen=True)
class Arm:
    """One model trained one way: architecture, input size, ImageNet weights or not, model options, TrainConfig."""

    name: str
    model: str
    image_size: int
    train: TrainConfig
    pretrained: bool = False
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"dropout": 0.0}
    # a linear probe: the backbone frozen, the head fitted as a logistic regression on cached features (helpers.training.probe)
    frozen_backbone: bool = False
    fallback: str | None = None  # the pretrained stand-in used where `model` has no ImageNet weights
    sizes: tuple[int, ...] = ()  # further input sizes the notebook trains this arm at (DermaMNIST)
    changed: tuple[tuple[str, Any], ...] = ()  # the settings with_settings changed, in order: they name the arm's rows

    def __post_init__(self) -> None:
        for key in ("name", "model"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ValueError(f"Arm.{key} must be a non-empty string; got {getattr(self, key)!r}")
        check_int(f"arm {self.name}: image_size", self.image_size)
        for size in self.sizes:
            check_int(f"arm {self.name}: sizes", size)
        for key in ("pretrained", "frozen_backbone"):
            check_bool(f"arm {self.name}: {key}", getattr(self, key))
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"arm {self.name}: train must be a TrainConfig; got {self.train!r}")
        if self.frozen_backbone and not self.pretrained:
            raise ValueError(f"arm {self.name}: a frozen backbone needs pretrained weights")

    def using(self, model: str | None = None, image_size: int | None = None) -> Arm:
        """This arm with another architecture (e.g. its offline fallback) or input size; None keeps the arm's."""
        return dataclasses.replace(self, model=model or self.model, image_size=image_size or self.image_size)

    def with_settings(self, **settings: Any) -> Arm:
        """This arm with settings changed by keyword, named after them: `arm.with_settings(imbalance='none')` is
        "<name> (imbalance='none')". A key is a TrainConfig field (epochs, lr, imbalance, label_smoothing,
        backbone_lr, ...), an Arm field (pretrained, frozen_backbone, ...) or else a model option (dropout, ...)."""
        if not settings:
            return self
        train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
        own_keys = {f.name for f in dataclasses.fields(Arm)} - {"name", "train", "model_kwargs", "changed"}
        train = {k: v for k, v in settings.items() if k in train_keys}
        own = {k: v for k, v in settings.items() if k in own_keys}
        options = {k: v for k, v in settings.items() if k not in train and k not in own}
        changed = (*((k, v) for k, v in self.changed if k not in settings), *settings.items())
        base = self.name.removesuffix(self.row(""))  # the recipe's own name
        changes = dataclasses.replace(self, changed=changed)
        return dataclasses.replace(changes, name=changes.row(base), train=dataclasses.replace(self.train, **train),
                                   model_kwargs={**self.model_kwargs, **options}, **own)

    def row(self, label: str) -> str:
        """A table row's name for this arm: label, followed by the settings changed by keyword, if any
        (`config.arm('plain_loss', imbalance='balanced_sampling').row('plain')` is "plain (imbalance='balanced_sampling')")."""
        if not self.changed:
            return label
        return f"{label} ({', '.join(f'{key}={value!r}' for key, value in self.changed)})"

    def with_weights(self) -> tuple[Arm, str]:
        """(this arm, where its ImageNet weights are) when they are here or can be downloaded, else (the arm with its
        fallback model, why): what a pretrained arm trains on this machine, and a line saying so."""
        from ...models import WeightsUnavailableError, ensure_weights

        try:
            return self, f"{self.model}: ImageNet weights in {ensure_weights(self.model)}"
        except WeightsUnavailableError as err:
            if not self.fallback:
                raise
            return self.using(self.fallback), (f"{err}\n\nSo this arm uses {self.fallback} (ImageNet weights shipped in a "
                                                f"pip package, here: {ensure_weights(self.fallback).name}).")

    def build(self, classes: list[str]) -> Any:
        """The arm's Classifier for `classes`, its random weights drawn right after seeding with the arm's own seed."""
        import torch

        from ...models import build_classifier, set_backbone_trainable

        torch.manual_seed(self.train.seed)  # so no arm's initial weights depend on which arms were built before it
        model = build_classifier(self.model, classes, self.image_size, pretrained=self.pretrained,
                                 **dict(self.model_kwargs))
        if self.frozen_backbone:
            set_backbone_trainable(model, False)
        return model

    def fit_linear_probe(self, data: Any) -> Any:
        """This linear-probe arm built and its head fitted on cached frozen features of data.train, chosen on data.val.

        data: a SplitData at the arm's input size; returns helpers.training.probe's ProbeResult (its .model is the Classifier).
        """
        from ...data.tensors import default_device
        from ...training.probe import linear_probe

        if not self.frozen_backbone:
            raise ValueError(f"arm {self.name} trains its backbone: train it with fit, not as a linear probe")
        model = self.build(data.classes).to(default_device())
        return linear_probe(model, data.train, data.val, self.train, input_size=self.image_size)

    def describe(self) -> str:
        """One banner line: model, weights, input size, epochs, batch size and learning rate."""
        sizes = "/".join(map(str, self.sizes)) if self.sizes else str(self.image_size)
        options = "".join(f", {key} {value}" for key, value in self.model_kwargs.items())
        weights = (" ImageNet" + (" (frozen backbone)" if self.frozen_backbone else "")) if self.pretrained else ""
        if self.frozen_backbone:
            return f"{self.name}: {self.model}{weights}{options} | {sizes}px | logistic regression on cached features"
        return (f"{self.name}: {self.model}{weights}{options} | {sizes}px | epochs {self.train.epochs} | "
                f"batch {self.train.batch_size} | lr {self.train.lr:.1e}")

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON and checkpoints."""
        return dataclasses.asdict(self)

    def capped(self, epochs: int) -> Arm:
        """This arm with at most `epochs` epochs (a check run)."""
        return dataclasses.replace(self, train=dataclasses.replace(self.train, epochs=min(self.train.epochs, epochs)))


@dataclass(frozen=True)
class NotebookRecipes:
    """A notebook's recipes: per preset its sizes (`settings`), and how its arms follow from settings and seed."""

    notebook: str
    settings: Mapping[str, Mapping[str, Any]]  # preset -> setting -> value
    arms: Callable[[Mapping[str, Any], int], list[Arm]] = lambda settings, seed: []

    def build_arms(self, settings: Mapping[str, Any], seed: int) -> dict[str, Arm]:
        """The named arms under these settings (already overridden) and this seed."""
        arms = self.arms(settings, seed)
        names = [arm.name for arm in arms]
        if len(set(names)) < len(names):
            raise ValueError(f"{self.notebook}: two arms share a name in {names}")
        return {arm.name: arm for arm in arms}
