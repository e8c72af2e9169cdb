"""The hardware line keeps apart CPUs sold under one name: family, model, cores and native bf16."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.core import machine
from helpers.course.cost.series import machine_key

ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
ZEN4 = ZEN3.replace("model\t\t: 1", "model\t\t: 17")


def describe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpuinfo: str, bf16: bool) -> str:
    """hardware_description() on a CPU-only machine whose /proc/cpuinfo is cpuinfo (two processors)."""
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo + "\n" + cpuinfo.replace("processor\t: 0", "processor\t: 1"))
    monkeypatch.setattr(machine, "CPUINFO", path)
    monkeypatch.setattr(machine, "cpu_supports_bf16", lambda: bf16)
    monkeypatch.setattr(machine.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    return machine.hardware_description()


def test_the_line_names_family_model_cores_and_bf16(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = "CPU AMD EPYC (family 25 model 1, 2 cores, no native bf16)"
    assert describe(tmp_path, monkeypatch, ZEN3, bf16=False) == expected


def test_two_cpus_of_one_name_get_their_own_calibration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zen3 = describe(tmp_path, monkeypatch, ZEN3, bf16=False)
    zen4 = describe(tmp_path, monkeypatch, ZEN4, bf16=True)
    assert zen4 == "CPU AMD EPYC (family 25 model 17, 2 cores, native bf16)"
    assert machine_key(zen3) != machine_key(zen4)


def test_without_cpuinfo_the_platform_names_the_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "CPUINFO", tmp_path / "missing")
    monkeypatch.setattr(machine.platform, "processor", lambda: "arm")
    assert machine.cpu_model() == "arm" and machine.cpu_fields() == {}
