"""Which mixed precision to train with on a device: bf16, fp16 (with a gradient scaler) or off.

Kept free of other helpers imports so that `helpers.inference`, `helpers.train` and `helpers.config` can use it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import torch

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
