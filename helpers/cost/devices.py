"""GPU classes of the cost model: memory, mixed precision and sustained training FLOP/s per architecture family.

Sustained FLOP/s come from public training throughputs (images/s) converted with this project's FLOP convention:
FlopCounterMode's forward FLOPs per image at 224 px (2 per multiply-add: ResNet-50 8.17e9, EfficientNet-B0 0.769e9,
ViT-B/16 35.13e9, `helpers.models.profile`) times 3 for training (backward about twice the forward). Families
use GPUs very differently (depthwise convolutions are memory-bound, transformers are large matrix products), so
each has its own figure:

- conv (ResNet, AlexNet, VGG, the course's CNNs): ResNet-50 v1.5 from NVIDIA DeepLearningExamples;
- depthwise (EfficientNet, MobileNet): EfficientNet-B0 from the same repository;
- transformer (ViT, Mixer): no per-GPU training figure for ViT-B/16 in those sources, so it is the conv figure
  times the ViT-B/16-to-ResNet-50 ratio measured on one GPU by timm's benchmark (RTX 3090, AMP: 390.9 against
  826.1 img/s, i.e. 2.04x the FLOP/s).

Where a GPU has no published figure, it is derived and says how (`Measurement.derived`); a published figure
spans -10%..+10%, a derived one -25%..+15%. Images smaller than 224 px use a GPU less well: the per-step
overhead (kernel launches and the optimiser's fused step, a few ms, an assumption) stands for that. All of it is
an estimate until `make calibrate-gpu` has measured the GPU; a calibration file then replaces the class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FAMILIES = ("conv", "depthwise", "transformer")
FORWARD_FLOPS_224 = {"resnet50": 8.17e9, "efficientnet_b0": 0.769e9, "vit_b_16": 35.13e9}  # FlopCounterMode, per image
DLE = "NVIDIA/DeepLearningExamples PyTorch/Classification/ConvNets"
RESNET_README = f"{DLE}/resnet50v1.5/README.md (pytorch-21.03 NGC container)"
EFFICIENTNET_README = f"{DLE}/efficientnet/README.md (pytorch-21.03 NGC container)"
TIMM_3090 = "huggingface/pytorch-image-models results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv"
TRANSFORMER_OVER_CONV = (390.86 * FORWARD_FLOPS_224["vit_b_16"]) / (826.06 * FORWARD_FLOPS_224["resnet50"])
T4_OVER_V100 = 1190 / 3249  # mixed-precision ResNet-50 inference at batch 128, both in RESNET_README
PUBLISHED_SPREAD, DERIVED_SPREAD = (0.9, 1.1), (0.75, 1.15)


@dataclass(frozen=True)
class Measurement:
    """One public training-throughput figure and where it comes from."""

    model: str  # "resnet50" | "efficientnet_b0" | "vit_b_16"
    images_per_s: float
    batch_size: int | None
    precision: str
    source: str
    derived: str = ""  # empty for a published figure, else how it was derived

    @property
    def flops_per_s(self) -> float:
        """Sustained training FLOP/s: images/s x 3 x forward FLOPs per image."""
        return self.images_per_s * 3 * FORWARD_FLOPS_224[self.model]


@dataclass(frozen=True)
class GPU:
    """A GPU class of the cost model: memory, mixed precision, sustained training FLOP/s per family (low, high)."""

    key: str
    label: str
    memory_gib: float  # usable memory
    amp: str  # what amp="auto" picks there: bf16 on compute capability >= 8.0, else fp16 with a GradScaler
    peak_tflops: float  # dense fp16/bf16 tensor-core peak, for reference
    sustained: Mapping[str, tuple[float, float]]  # family -> (low, high) FLOP/s
    step_overhead_s: float
    measurements: tuple[Measurement, ...]


def _sustained(conv: Measurement, depthwise: Measurement) -> dict[str, tuple[float, float]]:
    def spread(m: Measurement, factor: float = 1.0, derived: bool = False) -> tuple[float, float]:
        low, high = DERIVED_SPREAD if (derived or m.derived) else PUBLISHED_SPREAD
        return (m.flops_per_s * factor * low, m.flops_per_s * factor * high)

    return {"conv": spread(conv), "depthwise": spread(depthwise),
            "transformer": spread(conv, TRANSFORMER_OVER_CONV, derived=True)}


def _scaled(m: Measurement, factor: float, how: str) -> Measurement:
    return Measurement(m.model, m.images_per_s * factor, m.batch_size, m.precision, m.source, how)


A100_RN50 = Measurement("resnet50", 2470, 256, "amp", f"{RESNET_README}: DGX A100 80GB, 1 GPU")
A100_B0 = Measurement("efficientnet_b0", 2489, None, "amp", f"{EFFICIENTNET_README}: DGX A100 80GB, 1 GPU")
V100_RN50 = Measurement("resnet50", 1200, 256, "amp", f"{RESNET_README}: DGX-1 V100 16GB, 1 GPU")
V100_B0 = Measurement("efficientnet_b0", 1301, None, "amp", f"{EFFICIENTNET_README}: DGX-1 V100 16GB, 1 GPU")
T4_HOW = (f"V100 training x {T4_OVER_V100:.3f}, the T4/V100 ratio of mixed-precision ResNet-50 inference at batch 128 "
          "(1,190 against 3,249 img/s, same README); no T4 training figure is published there")
T4_RN50, T4_B0 = _scaled(V100_RN50, T4_OVER_V100, T4_HOW), _scaled(V100_B0, T4_OVER_V100, T4_HOW)
L4_HOW = "T4 x 1.6: the L4's dense fp16 peak is 1.9x the T4's at a similar memory bandwidth (300 vs 320 GB/s)"
H100_HOW = "A100 x 2.0: the middle of the 1.6-2.4x training speed-ups NVIDIA reports for vision CNNs (an assumption)"

GPUS: dict[str, GPU] = {
    "t4": GPU("t4", "NVIDIA T4 16 GB (Colab free tier)", 15.0, "fp16", 65.0, _sustained(T4_RN50, T4_B0), 0.006,
              (T4_RN50, T4_B0)),
    "l4": GPU("l4", "NVIDIA L4 24 GB", 22.0, "bf16", 121.0,
              _sustained(_scaled(T4_RN50, 1.6, L4_HOW), _scaled(T4_B0, 1.6, L4_HOW)), 0.005,
              (_scaled(T4_RN50, 1.6, L4_HOW), _scaled(T4_B0, 1.6, L4_HOW))),
    "a100": GPU("a100", "NVIDIA A100 40 GB", 39.0, "bf16", 312.0, _sustained(A100_RN50, A100_B0), 0.004,
                (A100_RN50, A100_B0)),
    "h100": GPU("h100", "NVIDIA H100 80 GB", 79.0, "bf16", 989.0,
                _sustained(_scaled(A100_RN50, 2.0, H100_HOW), _scaled(A100_B0, 2.0, H100_HOW)), 0.0035,
                (_scaled(A100_RN50, 2.0, H100_HOW), _scaled(A100_B0, 2.0, H100_HOW))),
}


def family_of(model: str) -> str:
    """The architecture family of a registry model name: transformer, depthwise or conv."""
    if model.startswith(("vit", "mixer", "deit", "swin")):
        return "transformer"
    if model.startswith(("efficientnet", "mobilenet", "mnasnet", "regnet")):
        return "depthwise"
    return "conv"
