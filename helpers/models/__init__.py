"""The models layer: the course's CNNs, a registry over torchvision / timm backbones, pretrained weights, and the
deployable `Classifier` with its checkpoints.

- `cnn`: the reference notebook's CNN and an improved CNN;
- `weights`: which models have ImageNet weights, the libraries' caches and downloads, local weight files;
- `registry`: `create_model(name, num_classes, pretrained)`, the model's spec, head and backbone, Grad-CAM layer,
  input normalisation, parameter and FLOP counts;
- `classifier`: network + normalisation + class names, saved and loaded as one checkpoint.
"""

from ..core.errors import WeightsUnavailableError
from .classifier import CHECKPOINT_FORMAT, Classifier, build_classifier, load_checkpoint, save_checkpoint
from .cnn import ImprovedCNN, ReferenceCNN
from .registry import (
    backbone_parameters,
    count_parameters,
    create_model,
    flops_per_image,
    gradcam_layer,
    head_module,
    head_parameters,
    load_weights,
    model_from_spec,
    model_names,
    model_spec,
    normalization,
    set_backbone_trainable,
)
from .weights import ensure_weights, pretrained_available, weights_file

__all__ = [
    "CHECKPOINT_FORMAT", "Classifier", "ImprovedCNN", "ReferenceCNN", "WeightsUnavailableError", "backbone_parameters",
    "build_classifier", "count_parameters", "create_model", "ensure_weights", "flops_per_image", "gradcam_layer",
    "head_module", "head_parameters", "load_checkpoint", "load_weights", "model_from_spec", "model_names", "model_spec",
    "normalization", "pretrained_available", "save_checkpoint", "set_backbone_trainable", "weights_file",
]
