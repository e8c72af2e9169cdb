"""Grad-CAM (Selvaraju et al., 2017) for CNN classifiers, and how much of a map falls inside a region."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data.images import load_resized_mask
from ..models import gradcam_layer
from ..core.validate import check_int

MASS_COLUMN = "Grad-CAM mass inside lesion"
SHARE_COLUMN = "lesion share of image"
RATIO_NAME = "mass inside / lesion share (1.0 = uniform map)"


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    target_layer: nn.Module,
    class_index: int | Sequence[int] | torch.Tensor | None = None,
) -> torch.Tensor:
    """Grad-CAM maps (N, H, W) in [0, 1] at the input size for `class_index` (None: the predicted class)."""
    activations: list[torch.Tensor] = []
    gradients: list[torch.Tensor] = []

    def keep_activation(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # Copy now and hook the tensor: a later in-place op (e.g. ReLU(inplace=True)) must not change what we read.
        activations.append(output.detach().clone())
        output.register_hook(lambda grad: gradients.append(grad.detach()))

    modes = {module: module.training for module in model.modules()}
    handle = target_layer.register_forward_hook(keep_activation)
    model.eval()
    try:
        with torch.enable_grad():
            # Gradients flow from the input, so frozen backbones work; autograd.grad leaves no .grad on parameters.
            inputs = images.detach().requires_grad_(True)
            logits = model(inputs)
            if class_index is None:
                target = logits.argmax(dim=1)
            else:
                target = torch.as_tensor(class_index, device=logits.device).long().expand(len(logits))
            score = logits.gather(1, target[:, None]).sum()
            torch.autograd.grad(score, inputs)
    finally:
        handle.remove()
        for module, training in modes.items():
            module.train(training)
    if len(activations) != 1 or len(gradients) != 1 or activations[0].dim() != 4:
        raise ValueError("target_layer must run exactly once per forward pass and output (N, C, h, w) activations")
    weights = gradients[0].mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations[0]).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))


def classifier_cams(model: nn.Module, images: torch.Tensor | np.ndarray,
                    class_index: int | Sequence[int] | torch.Tensor | None = None, batch_size: int = 64) -> np.ndarray:
    """Grad-CAM maps (N, H, W) of a `Classifier` for uint8 images (N, H, W, 3), at its registered Grad-CAM layer."""
    images = torch.from_numpy(np.array(images)) if isinstance(images, np.ndarray) else images  # a writable copy
    batch_size = check_int("batch_size", batch_size)
    device, layer = next(model.parameters()).device, gradcam_layer(model.net)
    targets = None if class_index is None else torch.as_tensor(class_index).long().expand(len(images))
    maps = []
    # In batches: one backward pass over all 1,504 HAM10000 test images at 96 px grew the process to 23.8 GB.
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device).permute(0, 3, 1, 2).float().div(255)
        batch_targets = None if targets is None else targets[start:start + batch_size].to(device)
        maps.append(grad_cam(model, x, layer, batch_targets).cpu())
    return torch.cat(maps).numpy() if maps else np.zeros((0, *images.shape[1:3]), dtype=np.float32)


def cam_mass_inside(cams: torch.Tensor | np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Share of each map's total mass that lies inside its binary mask (NaN for an all-zero map)."""
    cams = cams.detach().cpu().numpy() if isinstance(cams, torch.Tensor) else np.asarray(cams)
    masks = np.broadcast_to(np.asarray(masks, dtype=bool), cams.shape)
    total = cams.sum(axis=(1, 2))
    inside = np.where(masks, cams, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def feature_map_size(model: nn.Module, image: torch.Tensor | np.ndarray) -> tuple[int, int]:
    """(height, width) of the feature map Grad-CAM reads, for a uint8 image (H, W, 3) or the first of (N, H, W, 3)."""
    image = torch.as_tensor(np.asarray(image)) if isinstance(image, np.ndarray) else image
    batch = image[None] if image.dim() == 3 else image[:1]
    sizes: list[tuple[int, int]] = []
    modes = {module: module.training for module in model.modules()}
    handle = gradcam_layer(model).register_forward_hook(
        lambda module, inputs, output: sizes.append(tuple(output.shape[-2:])))
    try:
        with torch.no_grad():
            model.eval()(batch.to(next(model.parameters()).device).permute(0, 3, 1, 2).float().div(255))
    finally:
        handle.remove()
        for module, training in modes.items():
            module.train(training)
    if not sizes:
        raise ValueError("the Grad-CAM layer did not run in the forward pass")
    return int(sizes[0][0]), int(sizes[0][1])


@dataclass(frozen=True, eq=False)  # eq=False: DataFrames do not compare to one bool
class MaskAgreement:
    """How much of the Grad-CAM maps of the masked test images falls inside their lesion masks.

    table: per diagnosis and 'all', the mean Grad-CAM mass inside the lesion and the mean lesion share of the
    image (the mass a uniform map puts there); ratio: the one over the other (1.0 = no better than a uniform map);
    above: the share of scored images (those with a non-zero map) whose mass inside exceeds their lesion share.
    """

    table: pd.DataFrame
    ratio: pd.Series
    above: float
    n_scored: int
    image_size: int

    def verdict(self, cam_size: tuple[int, int]) -> str:
        """One Markdown sentence on the overall ratio, with a caveat when the feature map is too coarse (<= 4 cells)."""
        cam_h, cam_w = cam_size
        caveat = (f" At {self.image_size} px, though, the feature map is only {cam_h}×{cam_w} cells, too coarse to "
                  "localise a lesion: this comparison only means something at larger inputs."
                  if max(cam_h, cam_w) <= 4 else "")
        if self.n_scored == 0:
            return f"No masked test image has a non-zero Grad-CAM map: there is no ratio to judge.{caveat}"
        overall = float(self.ratio["all"])
        # A uniform map puts exactly the lesion's share of its mass inside the lesion: a ratio of 1.0 says nothing.
        # Within 10% of 1.0 we call the map no better than uniform (a rule of thumb, not a test).
        verdict = ("concentrates on the lesion" if overall > 1.1 else "puts less on the lesion than a uniform map would"
                   if overall < 0.9 else "does not concentrate on the lesion (no better than a uniform map)")
        return (f"Overall the Grad-CAM map {verdict}: it puts {overall:.2f} times a uniform map's share of its mass "
                f"inside the lesion, and more than a uniform share in {self.above:.0%} of the {self.n_scored:,} "
                f"masked test images.{caveat}")


def mask_agreement(model: nn.Module, images: torch.Tensor | np.ndarray, rows: pd.DataFrame,
                   masks: Mapping[str, str | Path], image_size: int | None = None, resize_policy: str | None = None,
                   batch_size: int = 64) -> MaskAgreement | None:
    """Grad-CAM mass inside the lesion masks of the test images that have one, against a uniform map; None if none has.

    images (N, H, W, 3) uint8 and rows (image_id, dx) in the same order; masks: image_id -> mask file, resized like
    the images (image_size: the images' side, resize_policy: the model's, unless given).
    """
    if len(rows) != len(images):
        raise ValueError(f"rows and images must match one to one, got {len(rows)} rows and {len(images)} images")
    size = int(images.shape[1]) if image_size is None else check_int("image_size", image_size)
    if tuple(images.shape[1:3]) != (size, size):
        raise ValueError(f"images must be {size}x{size} to compare with masks resized to {size} px, "
                         f"got {tuple(images.shape[1:3])}")
    policy = getattr(model, "resize_policy", "center_crop") if resize_policy is None else resize_policy
    with_mask = np.flatnonzero(rows["image_id"].isin(list(masks)).to_numpy())
    if not len(with_mask):
        return None
    mask_stack = np.stack([load_resized_mask(masks[i], size, policy) for i in rows["image_id"].iloc[with_mask]])
    chosen = images[torch.as_tensor(with_mask)] if isinstance(images, torch.Tensor) else images[with_mask]
    cam_mass = cam_mass_inside(classifier_cams(model, chosen, batch_size=batch_size), mask_stack)
    mask_area = mask_stack.mean(axis=(1, 2))
    # As notebook 04 had it: the per-diagnosis means rounded to 3 decimals, the 'all' row exact (NaN maps left out).
    table = pd.DataFrame({"dx": rows["dx"].iloc[with_mask].astype(str).to_numpy(), MASS_COLUMN: cam_mass,
                          SHARE_COLUMN: mask_area}).groupby("dx").mean().round(3)
    scored = ~np.isnan(cam_mass)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every map all-zero: NaN, said by verdict()
        table.loc["all"] = [float(np.nanmean(cam_mass)), float(mask_area.mean())]
    ratio = (table[MASS_COLUMN] / table[SHARE_COLUMN]).rename(RATIO_NAME)
    above = float(np.mean(cam_mass[scored] > mask_area[scored])) if scored.any() else float("nan")
    return MaskAgreement(table=table, ratio=ratio, above=above, n_scored=int(scored.sum()), image_size=size)
