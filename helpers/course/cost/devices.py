"""The GPU classes of the cost model: memory, mixed precision and sustained training FLOP/s per architecture family.

Method. For each GPU class (T4, L4, A100, H100) and each architecture family, public single-GPU training
throughputs with mixed precision at 224 px (images/s per GPU; multi-GPU tables are divided by their GPU count)
are collected for one model of the family: ResNet-50 for "conv" (dense convolutions), EfficientNet-B0 for
"depthwise", ViT-B/16 for "transformer". Each figure becomes a sustained training rate with the project's FLOP
convention: torch.utils.flop_counter.FlopCounterMode counts 2 FLOPs per multiply-add, and a training step costs
about 3 x the forward pass (the backward pass about twice the forward), so

    sustained FLOP/s = images/s x 3 x forward FLOPs per image (224 px)

with forward FLOPs per image of 8.17e9 (resnet50), 0.769e9 (efficientnet_b0) and 35.13e9 (vit_b_16), measured
with FlopCounterMode. A family's (low, high) is the spread of its figures on that GPU; where only one figure
exists it would be +-15% around it (SINGLE_SOURCE_SPREAD; every class below happens to have two or more).

Published and derived figures. A `Measurement` with an empty `derived` is a number as published (its source
names the repository and path, or the URL, the hardware, batch size and software). No public training figure
was found for the T4 or the L4 at all, for EfficientNet-B0 on the H100, or for ViT-B/16 in PyTorch on the A100
and H100 (the published ViT-B/16 figures are NVIDIA's JAX ones). Those entries are derived, and say how:

- memory-bound families (depthwise) scale by the memory-bandwidth ratio of the two GPUs;
- dense convolutions on the T4 and L4 scale a figure of another GPU by the bandwidth ratio and by the dense
  fp16 tensor-peak ratio (the L4's spread between the two is wide: 300 GB/s but 121 TFLOPS and a 48 MB L2);
  the T4 also gets its published ResNet-50 inference rate times the training/inference ratio NVIDIA measured
  on a V100 with the same code;
- the transformer family takes a conv figure of the same GPU times 1.387, the ratio of ViT-B/16 to ResNet-50
  sustained FLOP/s in timm's training benchmark on an RTX 3090 (AMP, channels_last, PyTorch 1.12:
  vit_base_patch16_224 392.99 img/s at batch 192, resnet50 1218.01 img/s at batch 512;
  huggingface/pytorch-image-models results/benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv).

Bandwidths and peaks used (NVIDIA datasheets; peaks are dense fp16/bf16 tensor-core rates with fp32
accumulation): T4 320 GB/s, 65 TFLOPS; L4 300 GB/s, 121 TFLOPS; A10 600 GB/s, 125 TFLOPS; V100 SXM2 900 GB/s;
RTX 3090 936 GB/s; A100 40 GB 1,555 GB/s, 80 GB SXM4 2,039 GB/s, 312 TFLOPS; H100 SXM5 3,350 GB/s, 989 TFLOPS;
H100 PCIe 2,000 GB/s, 756 TFLOPS.

What is not folded in here. The figures are for 224 px images at large batches. Smaller images (64-128 px) and
small models use a GPU less well; that is left to `step_overhead_s`, an assumed floor per optimizer step
(kernel launches and Python): eager PyTorch launches some 300-600 kernels per training step of a ResNet
(forward, backward, batch-norm updates) at roughly 5-10 us of host time each, plus the optimizer's fused or
foreach step and, for fp16, the GradScaler's unscale and inf check - a few milliseconds, more on the T4's
two-vCPU Colab host than on the hosts of the data-centre GPUs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FAMILIES = ("conv", "depthwise", "transformer")

# forward FLOPs per 224 px image, FlopCounterMode (2 FLOPs per multiply-add), of each benchmark model
FORWARD_FLOPS = {"resnet50": 8.17e9, "efficientnet_b0": 0.769e9, "vit_b_16": 35.13e9}
TRAINING_FACTOR = 3  # a training step ~ forward + backward ~ 3 x the forward FLOPs
SINGLE_SOURCE_SPREAD = 0.15  # (low, high) = +-15% around a family's only figure

_TRANSFORMER_PREFIXES = ("vit", "mixer", "deit", "swin")
_DEPTHWISE_PREFIXES = ("efficientnet", "mobilenet", "mnasnet", "regnet")  # regnet: grouped convolutions

# sources, named once
_DLE = "NVIDIA/DeepLearningExamples "
_RN50_README = _DLE + "PyTorch/Classification/ConvNets/resnet50v1.5/README.md @291f0d02"
_EFFNET_README = _DLE + "PyTorch/Classification/ConvNets/efficientnet/README.md"
_LAMBDA = "lambdal/deeplearning-benchmark pytorch/pytorch-train-throughput-fp16.csv @0551cb70"
_LAMBDA_SETUP = "NVIDIA DLE ResNet-50 v1.5 via Lambda's scripts, PyTorch NGC 22.09+, synthetic data, AMP"
_TIMM_3090 = "huggingface/pytorch-image-models results/benchmark-train-amp-nhwc-pt112-cu113-rtx3090.csv @5e7d47ca"
_ROSETTA = "NVIDIA/JAX-Toolbox rosetta/rosetta/projects/vit/README.md @00eff412"
_VIT_RATIO = 1.387  # ViT-B/16 / ResNet-50 sustained FLOP/s in timm's RTX 3090 training CSV


@dataclass(frozen=True)
class Measurement:
    """One public training-throughput figure and where it comes from."""

    model: str  # "resnet50" | "efficientnet_b0" | "vit_b_16"
    images_per_s: float
    batch_size: int | None
    precision: str  # "amp fp16", "amp bf16", "tf32", ...
    source: str  # repository + path, or URL
    derived: str = ""  # empty for a published figure, else how it was derived

    @property
    def family(self) -> str:
        """The architecture family this figure stands for."""
        return family_of(self.model)

    @property
    def flops_per_s(self) -> float:
        """Sustained training FLOP/s: images/s x 3 x forward FLOPs per image."""
        return self.images_per_s * TRAINING_FACTOR * FORWARD_FLOPS[self.model]


@dataclass(frozen=True)
class GPU:
    """A GPU class of the cost model: memory, mixed precision, sustained training FLOP/s per family (low, high)."""

    key: str  # "t4", "l4", "a100", "h100"
    label: str  # e.g. "NVIDIA T4 16 GB (Colab free tier)"
    memory_gib: float  # usable memory
    amp: str  # "fp16" or "bf16": what helpers' amp="auto" picks there (bf16 on compute capability >= 8.0)
    peak_tflops: float  # dense fp16/bf16 tensor-core peak, for reference (source in measurements or docstring)
    sustained: Mapping[str, tuple[float, float]]  # family -> (low, high) FLOP/s
    step_overhead_s: float  # per optimizer step: kernel-launch and Python floor for small models and images
    measurements: tuple[Measurement, ...]


def family_of(model: str) -> str:
    """The architecture family of a registry model name."""
    name = model.lower()
    if name.startswith(_TRANSFORMER_PREFIXES):
        return "transformer"
    if name.startswith(_DEPTHWISE_PREFIXES):
        return "depthwise"
    return "conv"


def sustained_of(measurements: Iterable[Measurement]) -> dict[str, tuple[float, float]]:
    """Family -> (low, high) sustained FLOP/s: the spread of its figures, +-15% around a single one."""
    rates: dict[str, list[float]] = {}
    for measurement in measurements:
        rates.setdefault(measurement.family, []).append(measurement.flops_per_s)
    spread = {}
    for family, values in rates.items():
        if len(values) == 1:
            spread[family] = (values[0] * (1 - SINGLE_SOURCE_SPREAD), values[0] * (1 + SINGLE_SOURCE_SPREAD))
        else:
            spread[family] = (min(values), max(values))
    return {family: spread[family] for family in FAMILIES if family in spread}


def _gpu(key: str, label: str, memory_gib: float, amp: str, peak_tflops: float, step_overhead_s: float,
         measurements: tuple[Measurement, ...]) -> GPU:
    return GPU(key, label, memory_gib, amp, peak_tflops, sustained_of(measurements), step_overhead_s, measurements)


def _vit_from_conv(conv: Measurement, what: str) -> Measurement:
    """A ViT-B/16 figure derived from a ResNet-50 figure of the same GPU with timm's RTX 3090 ratio."""
    images = conv.flops_per_s * _VIT_RATIO / (TRAINING_FACTOR * FORWARD_FLOPS["vit_b_16"])
    return Measurement("vit_b_16", round(images), None, conv.precision, f"{conv.source}; {_TIMM_3090}",
                       derived=f"{what} ResNet-50 {conv.images_per_s:g} img/s x 3 x 8.17e9 FLOPs x {_VIT_RATIO} "
                               f"(timm RTX 3090: vit_base_patch16_224 392.99 vs resnet50 1218.01 img/s) "
                               f"/ (3 x 35.13e9)")


# T4: Turing, compute capability 7.5 (fp16 autocast with a GradScaler; no bf16), 65 TFLOPS, 320 GB/s, 70 W
_T4_RN50_A = Measurement(
    "resnet50", 425, 256, "amp fp16",
    f"{_RN50_README} (T4 mixed-precision inference 1198 img/s at batch 256; V100 16GB training 1200 and inference "
    f"3382 img/s at batch 256; PyTorch NGC 21.03)",
    derived="T4 inference 1198 img/s x (V100 training 1200 / V100 inference 3382 img/s) = 425")
_T4_RN50_B = Measurement(
    "resnet50", 340, None, "amp fp16", f"{_LAMBDA} (LambdaCloud A10, 1 GPU, 638 img/s; {_LAMBDA_SETUP})",
    derived="A10 638 img/s x bandwidth 320/600 GB/s = 340 (the fp16 tensor-peak ratio 65/125 gives 332)")
T4 = _gpu("t4", "NVIDIA T4 16 GB (Colab free tier)", 14.7, "fp16", 65.0, 0.005, (
    _T4_RN50_A,
    _T4_RN50_B,
    Measurement("efficientnet_b0", 463, 256, "amp fp16",
                f"{_EFFNET_README} @0107cf27 (DGX-1 V100 16GB, 1 GPU, 1301 img/s, PyTorch NGC 21.03, NHWC)",
                derived="V100 1301 img/s x bandwidth 320/900 GB/s = 463"),
    Measurement("efficientnet_b0", 599, 512, "amp fp16", f"{_TIMM_3090} (efficientnet_b0 1751.72 img/s)",
                derived="RTX 3090 1751.72 img/s x bandwidth 320/936 GB/s = 599"),
    _vit_from_conv(_T4_RN50_B, "the T4's derived"),
    _vit_from_conv(_T4_RN50_A, "the T4's derived"),
))

# L4: Ada, compute capability 8.9 (bf16), 121 TFLOPS dense (242 with sparsity), 300 GB/s, 48 MB L2, 72 W
_L4_RN50_LOW = Measurement(
    "resnet50", 319, None, "amp fp16", f"{_LAMBDA} (LambdaCloud A10, 1 GPU, 638 img/s; {_LAMBDA_SETUP})",
    derived="A10 638 img/s x bandwidth 300/600 GB/s = 319")
_L4_RN50_HIGH = Measurement(
    "resnet50", 618, None, "amp fp16", f"{_LAMBDA} (LambdaCloud A10, 1 GPU, 638 img/s; {_LAMBDA_SETUP})",
    derived="A10 638 img/s x dense fp16 tensor peak 121/125 TFLOPS = 618")
L4 = _gpu("l4", "NVIDIA L4 24 GB (Colab Pro, Google Cloud G2)", 22.0, "bf16", 121.0, 0.004, (
    _L4_RN50_LOW,
    _L4_RN50_HIGH,
    Measurement("efficientnet_b0", 434, 256, "amp fp16",
                f"{_EFFNET_README} @0107cf27 (DGX-1 V100 16GB, 1 GPU, 1301 img/s, PyTorch NGC 21.03, NHWC)",
                derived="V100 1301 img/s x bandwidth 300/900 GB/s = 434 (pessimistic: ignores the 48 MB L2)"),
    Measurement("efficientnet_b0", 561, 512, "amp fp16", f"{_TIMM_3090} (efficientnet_b0 1751.72 img/s)",
                derived="RTX 3090 1751.72 img/s x bandwidth 300/936 GB/s = 561"),
    _vit_from_conv(_L4_RN50_LOW, "the L4's derived"),
    _vit_from_conv(_L4_RN50_HIGH, "the L4's derived"),
))

# A100: Ampere, compute capability 8.0 (bf16), 312 TFLOPS; 40 GB (1,555 GB/s) and 80 GB (SXM4 2,039 GB/s)
_A100_RN50_PCIE40 = Measurement(
    "resnet50", 1396, 720, "amp fp16", f"{_LAMBDA} (LambdaCloud A100 40GB PCIe, 1 GPU; {_LAMBDA_SETUP})")
A100 = _gpu("a100", "NVIDIA A100 40/80 GB (Colab Pro: 40 GB SXM4)", 39.4, "bf16", 312.0, 0.0035, (
    Measurement("resnet50", 2470, 256, "amp fp16",
                f"{_RN50_README} (DGX A100 80GB, 1 GPU, PyTorch NGC 21.03, DALI, NHWC)"),
    Measurement("resnet50", 2600, 512, "amp fp16",
                "https://github.com/huggingface/pytorch-image-models/issues/1491 (A100, timm benchmark.py, "
                "--amp --channels-last, NGC 22.04; 'throughput always 2600 img/s')"),
    Measurement("resnet50", 1582, 1280, "amp fp16", f"{_LAMBDA} (A100 80GB SXM4, 1 GPU; {_LAMBDA_SETUP})"),
    Measurement("resnet50", 1527, 1280, "amp fp16", f"{_LAMBDA} (A100 80GB PCIe, 1 GPU; {_LAMBDA_SETUP})"),
    _A100_RN50_PCIE40,
    Measurement("efficientnet_b0", 2489, 256, "amp fp16",
                f"{_EFFNET_README} @0107cf27 (DGX A100 80GB, 1 GPU, PyTorch NGC 21.03, NHWC)"),
    Measurement("efficientnet_b0", 2364, 256, "amp fp16",
                f"{_EFFNET_README} (earlier version: DGX A100 80GB, 1 GPU, PyTorch NGC 20.12)"),
    Measurement("efficientnet_b0", 2910, 512, "amp fp16", f"{_TIMM_3090} (efficientnet_b0 1751.72 img/s)",
                derived="RTX 3090 1751.72 img/s x bandwidth 1555/936 GB/s (A100 40 GB) = 2910"),
    Measurement("vit_b_16", 900, 512, "amp bf16",
                f"{_ROSETTA} (ViT-B/16 pre-training at 224 px, JAX/XLA, DGX A100 80GB: 7200.38 samples/s on "
                f"8 GPUs = 900 per GPU)"),
    _vit_from_conv(_A100_RN50_PCIE40, "Lambda's A100 40GB PCIe"),
))

# H100: Hopper, compute capability 9.0 (bf16), SXM5 989 TFLOPS and 3,350 GB/s; PCIe 756 TFLOPS and 2,000 GB/s
_H100_RN50_PCIE = Measurement(
    "resnet50", 1851, 1280, "amp fp16", f"{_LAMBDA} (LambdaCloud H100 80GB PCIe Gen5, 1 GPU; {_LAMBDA_SETUP})")
H100 = _gpu("h100", "NVIDIA H100 80 GB (SXM5 or PCIe)", 79.1, "bf16", 989.0, 0.003, (
    Measurement("resnet50", 2616, None, "amp fp16", f"{_LAMBDA} (H100 80GB SXM5, 1 GPU; {_LAMBDA_SETUP})"),
    Measurement("resnet50", 2791, None, "amp fp16", f"{_LAMBDA} (1CC H100 80GB SXM5, 1 GPU; {_LAMBDA_SETUP})"),
    Measurement("resnet50", 1866, 1280, "amp fp16", f"{_LAMBDA} (H100 80GB PCIe Gen5, 1 GPU; {_LAMBDA_SETUP})"),
    _H100_RN50_PCIE,
    Measurement("efficientnet_b0", 4089, 256, "amp fp16",
                f"{_EFFNET_README} @0107cf27 (DGX A100 80GB, 1 GPU, 2489 img/s, PyTorch NGC 21.03)",
                derived="A100 80GB 2489 img/s x bandwidth 3350/2039 GB/s (H100 SXM5) = 4089"),
    Measurement("efficientnet_b0", 2441, 256, "amp fp16",
                f"{_EFFNET_README} @0107cf27 (DGX A100 80GB, 1 GPU, 2489 img/s, PyTorch NGC 21.03)",
                derived="A100 80GB 2489 img/s x bandwidth 2000/2039 GB/s (H100 PCIe) = 2441"),
    Measurement("vit_b_16", 1459, 512, "amp bf16",
                f"{_ROSETTA} (ViT-B/16 pre-training at 224 px, JAX/XLA, 8x H100: 11669.52 samples/s on "
                f"8 GPUs = 1459 per GPU)"),
    _vit_from_conv(_H100_RN50_PCIE, "Lambda's H100 PCIe"),
))

GPUS: dict[str, GPU] = {gpu.key: gpu for gpu in (T4, L4, A100, H100)}
