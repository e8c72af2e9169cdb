"""Which mixed precision to train with on a device: bf16, fp16 (with a gradient scaler) or off.

Kept free of other helpers imports so that `helpers.training.inference`, `helpers.train` and `helpers.course.config` can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import torch
from torch import nn

AMP_MODES = ("auto", "bf16", "fp16", "off")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
BF16_MIN_CAPABILITY = (8, 0)  # Ampere: native bf16 tensor cores; below it bf16 is emulated and slow


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 instructions (AVX512-BF16 or AMX), where autocast pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_amp(amp: str, device: str | torch.device) -> str:
    """'bf16', 'fp16' or 'off' for an amp setting (auto | bf16 | fp16 | off) on device.

    auto: on CUDA, bf16 from compute capability 8.0 (Ampere) up and fp16 below it (T4, V100);
    on a CPU, bf16 where it has native bf16 instructions, else off; off on other devices.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}; got {amp!r}")
    if amp != "auto":
        return amp
    device = torch.device(device)
    if device.type == "cuda":
        # Not torch.cuda.is_bf16_supported(): it is also true where bf16 is only emulated.
        return "bf16" if torch.cuda.get_device_capability(device) >= BF16_MIN_CAPABILITY else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_supports_bf16() else "off"
    return "off"


def amp_dtype(resolved: str) -> torch.dtype | None:
    """The autocast dtype of a resolved amp choice; None for 'off'."""
    return AMP_DTYPES.get(resolved)


def autocast(resolved: str, device: torch.device) -> AbstractContextManager:
    """An autocast context for a resolved amp choice on device (disabled for 'off')."""
    dtype = amp_dtype(resolved)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def grad_scaler(resolved: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (bf16 has fp32's exponent range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=resolved == "fp16")


def describe_amp(device: str | torch.device) -> str:
    """The automatic amp choice for device, for banners: 'bf16', 'fp16' or 'off'."""
    return resolve_amp("auto", device)


def is_depthwise(module: nn.Module) -> bool:
    """True for a depthwise 2-d convolution (one filter group per input channel), as in EfficientNet and MobileNet."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


@contextmanager
def depthwise_in_fp32(model: nn.Module, resolved: str, device: str | torch.device) -> Iterator[int]:
    """Within it, model's depthwise convolutions run in fp32 wherever they are trained under CPU bf16 autocast.

    oneDNN's bf16 depthwise backward is slow: EfficientNet-Lite0 and -B0 trained 1.55-1.79x faster with only these
    layers in fp32 (benchmarks/README.md, "Depthwise convolutions in fp32"). Inference (no grad) keeps bf16, which is
    faster there. Yields how many layers it switched; a no-op off the CPU or without bf16.
    """
    if resolved != "bf16" or torch.device(device).type != "cpu":
        yield 0
        return
    handles = []
    for module in model.modules():
        if is_depthwise(module):
            switched = []  # per layer: whether this call turned autocast off, so that the hook after it restores it
            handles += [module.register_forward_pre_hook(_fp32_before(switched)),
                        module.register_forward_hook(_fp32_after(switched))]
    try:
        yield len(handles) // 2
    finally:
        for handle in handles:
            handle.remove()


def _fp32_before(switched: list[bool]) -> Callable[[nn.Module, tuple], tuple | None]:
    def hook(module: nn.Module, args: tuple) -> tuple | None:
        if not (torch.is_grad_enabled() and torch.is_autocast_enabled("cpu")):
            return None
        torch.set_autocast_enabled("cpu", False)  # an exception inside is undone by the enclosing autocast's exit
        switched.append(True)
        return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)
    return hook


def _fp32_after(switched: list[bool]) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if switched:
            switched.pop()
            torch.set_autocast_enabled("cpu", True)
    return hook
