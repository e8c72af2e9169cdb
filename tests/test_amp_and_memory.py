"""Mixed precision per device (bf16, fp16 with a gradient scaler, off) and where the image cache lives."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import helpers.data.tensors as tensors_module
import helpers.training.loop as train_module  # where fit and its grad_scaler live
from helpers.core import precision
from helpers.training.augment import AugmentConfig
from helpers.course.config import banner, resolve_config
from helpers.data.tensors import ImageData, placement
from helpers.training.inference import predict_logits
from helpers.models import build_classifier, load_checkpoint
from helpers.core.precision import cpu_supports_bf16, describe_amp, resolve_amp
from helpers.training.loop import TrainConfig, fit

GiB = 1024**3
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # true under emulation: must be ignored


def _fake_cpuinfo(monkeypatch: pytest.MonkeyPatch, flags: str) -> None:
    real = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: f"flags\t: {flags}\n" if str(self) == "/proc/cpuinfo"
                        else real(self, *a, **k))


@pytest.mark.parametrize(("capability", "expected"), [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"),
                                                      ((8, 6), "bf16"), ((9, 0), "bf16")])
def test_auto_on_cuda_follows_the_compute_capability(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int],
                                                     expected: str) -> None:
    _fake_cuda(monkeypatch, capability)
    assert resolve_amp("auto", "cuda") == expected
    assert resolve_amp("auto", torch.device("cuda", 0)) == expected
    assert describe_amp("cuda") == expected


def test_explicit_choices_are_honoured_on_every_device(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch, (7, 5))
    _fake_cpuinfo(monkeypatch, "fpu sse2 avx2")
    for device in ("cuda", "cpu"):
        assert [resolve_amp(amp, device) for amp in ("bf16", "fp16", "off")] == ["bf16", "fp16", "off"]
    with pytest.raises(ValueError, match="amp must be one of auto, bf16, fp16, off; got 'fp32'"):
        resolve_amp("fp32", "cpu")
    assert TrainConfig(amp="fp16").amp == "fp16"
    with pytest.raises(ValueError, match="TrainConfig.amp"):
        TrainConfig(amp="fp32")


@pytest.mark.parametrize(("flags", "expected"), [("fpu avx2 avx512f avx512_bf16", "bf16"), ("fpu amx_bf16 amx_tile", "bf16"),
                                                 ("fpu sse2 avx2 avx512f", "off")])
def test_auto_on_cpu_uses_bf16_only_with_native_instructions(monkeypatch: pytest.MonkeyPatch, flags: str,
                                                             expected: str) -> None:
    _fake_cpuinfo(monkeypatch, flags)
    assert cpu_supports_bf16() == (expected == "bf16")
    assert resolve_amp("auto", "cpu") == expected
    assert resolve_amp("auto", "meta") == "off"  # neither CUDA nor CPU: no autocast


def test_config_records_and_banner_prints_the_amp_choice(synthetic_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKIN_LESION_PRESET", raising=False)
    _fake_cpuinfo(monkeypatch, "fpu avx2")
    config = resolve_config("cpu", data_dir=str(synthetic_dir))
    assert config.device == "cpu" and config.amp == "off" and config.to_dict()["amp"] == "off"
    assert "| amp off |" in banner(config)
    assert "| amp fp16 |" in banner(dataclasses.replace(config, amp="fp16"))


class CountingScaler(torch.amp.GradScaler):
    """A real GradScaler that counts how fit uses it."""

    made: list["CountingScaler"] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = {"scale": 0, "step": 0, "update": 0}
        CountingScaler.made.append(self)

    def scale(self, outputs):  # type: ignore[override]
        self.calls["scale"] += 1
        return super().scale(outputs)

    def step(self, optimizer, *args, **kwargs):  # type: ignore[override]
        self.calls["step"] += 1
        return super().step(optimizer, *args, **kwargs)

    def update(self, new_scale=None) -> None:  # type: ignore[override]
        self.calls["update"] += 1
        super().update(new_scale)


def _toy_data(n: int, seed: int) -> ImageData:
    """Two classes told apart by brightness, 8x8 (small: fp16 is some 100 times slower than bf16 on a CPU)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 96, (n, 8, 8, 3)) + 120 * labels[:, None, None, None]
    return ImageData.from_numpy(images.astype(np.uint8), labels)


def test_fp16_trains_on_cpu_with_a_grad_scaler_and_is_checkpointed(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    CountingScaler.made.clear()
    monkeypatch.setattr(train_module, "grad_scaler", lambda amp, device: CountingScaler(device.type, enabled=amp == "fp16"))
    torch.manual_seed(0)
    model = build_classifier("reference_cnn", ["dark", "bright"], 8)
    config = TrainConfig(epochs=3, batch_size=8, lr=3e-3, amp="fp16", schedule="constant", augment=AugmentConfig.none(),
                         progress=False)
    result = fit(model, _toy_data(16, 0), _toy_data(8, 1), config, checkpoint_path=tmp_path / "m.pt")
    losses = result.history["train_loss"].tolist()
    assert result.amp == "fp16"
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0], losses
    (scaler,) = CountingScaler.made
    steps = 2 * len(losses)
    assert scaler.is_enabled() and scaler.calls == {"scale": steps, "step": steps, "update": steps}
    _, payload = load_checkpoint(tmp_path / "m.pt")
    assert payload["config"]["amp_resolved"] == "fp16" and payload["config"]["train"]["amp"] == "fp16"


def test_bf16_and_off_train_without_an_active_scaler(monkeypatch: pytest.MonkeyPatch) -> None:
    CountingScaler.made.clear()
    monkeypatch.setattr(train_module, "grad_scaler", lambda amp, device: CountingScaler(device.type, enabled=amp == "fp16"))
    for amp in ("bf16", "off"):
        model = build_classifier("reference_cnn", ["dark", "bright"], 8)
        config = TrainConfig(epochs=1, batch_size=16, amp=amp, augment=AugmentConfig.none(), progress=False)
        assert fit(model, _toy_data(32, 0), _toy_data(16, 1), config).amp == amp
    assert [s.is_enabled() for s in CountingScaler.made] == [False, False]


def _depthwise_net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 4, 1))


def _output_dtypes(net: nn.Module, x: torch.Tensor, grad: bool) -> list[torch.dtype]:
    dtypes: list[torch.dtype] = []
    handles = [layer.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype)) for layer in net]
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        net(x)
        assert torch.is_autocast_enabled("cpu")  # the layer after the depthwise one turned it back on
    for handle in handles:
        handle.remove()
    return dtypes


def test_depthwise_convolutions_train_in_fp32_under_cpu_bf16_and_nothing_else_changes() -> None:
    net, x = _depthwise_net(), torch.randn(2, 3, 6, 6)
    assert [precision.is_depthwise(layer) for layer in net] == [False, True, False]
    bf16 = torch.bfloat16
    with precision.depthwise_in_fp32(net, "bf16", "cpu") as switched:
        assert switched == 1
        assert _output_dtypes(net, x, grad=True) == [bf16, torch.float32, bf16]
        assert _output_dtypes(net, x, grad=False) == [bf16, bf16, bf16]  # inference keeps the faster bf16
    assert _output_dtypes(net, x, grad=True) == [bf16, bf16, bf16]  # the hooks are gone after the block
    for resolved, device in (("off", "cpu"), ("fp16", "cpu"), ("bf16", "meta")):
        with precision.depthwise_in_fp32(net, resolved, device) as switched:
            assert switched == 0
    assert not any(map(precision.is_depthwise, build_classifier("resnet18", ["a", "b"], 32).modules()))


def test_fit_trains_efficientnet_depthwise_layers_in_fp32_under_bf16() -> None:
    model = build_classifier("efficientnet_lite0", ["dark", "bright"], 16)
    depthwise = [m for m in model.modules() if precision.is_depthwise(m)]
    assert len(depthwise) == 16
    seen: list[torch.dtype] = []
    depthwise[0].register_forward_hook(lambda m, a, out: seen.append(out.dtype) if torch.is_grad_enabled() else None)
    config = TrainConfig(epochs=1, batch_size=16, amp="bf16", augment=AugmentConfig.none(), progress=False)
    result = fit(model, _toy_data(32, 0), _toy_data(16, 1), config)
    assert result.amp == "bf16" and seen == [torch.float32, torch.float32] and math.isfinite(result.history.train_loss[0])
    assert all(not m._forward_pre_hooks for m in depthwise)  # fit leaves the model as it found it


class AutocastProbe(nn.Module):
    """Records whether autocast is on, and its dtype, at each forward."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.seen: list[tuple[bool, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return self.linear(x.mean(dim=(2, 3)))


def test_prediction_autocasts_with_the_chosen_dtype() -> None:
    probe = AutocastProbe()
    images = torch.randint(0, 256, (5, 4, 4, 3), dtype=torch.uint8)
    for amp, expected in (("fp16", (True, torch.float16)), ("bf16", (True, torch.bfloat16))):
        probe.seen.clear()
        logits = predict_logits(probe, images, batch_size=2, amp=amp)
        assert logits.dtype == torch.float32 and logits.shape == (5, 2) and probe.seen == [expected] * 3
    probe.seen.clear()
    predict_logits(probe, images, amp="off")
    assert [enabled for enabled, _ in probe.seen] == [False]


@pytest.mark.parametrize(("nbytes", "free", "expected"), [(1 * GiB, 40 * GiB, "device"), (19 * GiB, 40 * GiB, "device"),
                                                          (20 * GiB, 40 * GiB, "pinned"), (1 * GiB, 3 * GiB, "pinned"),
                                                          (1, 1 * GiB, "pinned")])
def test_placement_keeps_the_cache_on_the_gpu_only_when_it_fits(monkeypatch: pytest.MonkeyPatch, nbytes: int, free: int,
                                                                 expected: str) -> None:
    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: asked.append(device) or (free, 80 * GiB))
    assert placement(nbytes, "cuda") == expected  # at most half of what is free after 2 GiB of headroom
    assert placement(nbytes, torch.device("cpu")) == "cpu" and len(asked) == 1


def test_image_data_on_cpu_is_unchanged_no_pinning_no_copy() -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    data = ImageData.from_numpy(array, np.arange(10) % 3, "cpu")
    assert data.device == torch.device("cpu") and data.images.device == data.device and not data.images.is_pinned()
    assert data.images.data_ptr() == array.ctypes.data  # the CPU cache is used in place, as before
    index = torch.tensor([3, 1, 3, 9])
    x, y = data.batch(index)
    torch.testing.assert_close(x, torch.from_numpy(array[[3, 1, 3, 9]]).permute(0, 3, 1, 2).float() / 255)
    assert y.tolist() == [0, 1, 0, 0]
    part = data.subset(index)
    assert torch.equal(part.images, data.images[index]) and part.labels.tolist() == y.tolist()
    assert part.device == data.device and not part.images.is_pinned()
    assert ImageData(data.images, data.labels).device == torch.device("cpu")


@needs_cuda
def test_pinned_cache_trains_on_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensors_module, "placement", lambda nbytes, device: "pinned")
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    array = (rng.integers(0, 96, (64, 16, 16, 3)) + 120 * labels[:, None, None, None]).astype(np.uint8)
    data = ImageData.from_numpy(array, labels, "cuda")
    assert data.images.is_pinned() and data.device.type == "cuda" and data.labels.device == data.device
    x, y = data.batch(torch.tensor([5, 0, 5]))
    assert x.device == data.device and y.tolist() == [1, 0, 1]
    torch.testing.assert_close(x.cpu(), torch.from_numpy(array[[5, 0, 5]]).permute(0, 3, 1, 2).float() / 255)
    assert data.subset(torch.tensor([1, 1])).images.is_pinned()
    model = build_classifier("reference_cnn", ["dark", "bright"], 16).to(data.device)
    config = TrainConfig(epochs=2, batch_size=16, amp="fp16", augment=AugmentConfig.none(), progress=False)
    result = fit(model, data, data, config)
    assert result.amp == "fp16" and np.isfinite(result.history["train_loss"]).all()


@needs_cuda
def test_auto_on_this_gpu_matches_its_capability() -> None:
    expected = "bf16" if torch.cuda.get_device_capability() >= (8, 0) else "fp16"
    assert resolve_amp("auto", "cuda") == expected == precision.describe_amp(torch.device("cuda", 0))
