"""The machine at hand in one line: its GPU, or its CPU model, family, core count and bf16 support."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from .precision import cpu_supports_bf16

CPUINFO = Path("/proc/cpuinfo")


def hardware_description() -> str:
    """One line naming the GPU, or the CPU model, its family/model numbers, core count and native bf16 support.

    Two CPUs sold under one name can differ twofold for this course (an AMD EPYC with AVX512-BF16 trains in bf16,
    one without it in fp32), so the line keeps them apart: in the reports, and in the cost model's calibrations.
    """
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    fields = cpu_fields()
    family = (f"family {fields['cpu family']} model {fields['model']}, "
              if "cpu family" in fields and "model" in fields else "")
    bf16 = "native bf16" if cpu_supports_bf16() else "no native bf16"
    return f"CPU {cpu_model()} ({family}{os.cpu_count()} cores, {bf16})"


def cpu_fields() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module knows."""
    return cpu_fields().get("model name") or platform.processor() or platform.machine()
