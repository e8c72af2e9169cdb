"""Memory that fits: a training over its memory budget splits batches into micro-batches with gradient
accumulation (the same weights as whole batches), a CUDA out-of-memory error halves the micro-batch and redoes the
step, and without a budget on a CPU nothing changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers.training.augment import AugmentConfig
from helpers.data.tensors import ImageData
from helpers.models import build_classifier
from helpers.models.profile import largest_batch, profile, profile_model, training_memory
from helpers.training.loop import OUT_OF_MEMORY, TrainConfig, fit

SIDE, CLASSES = 16, 3


class Tiny(nn.Module):
    """The reference CNN without dropout at 16 px: no batch norm and nothing random, so that a batch split in parts
    has exactly the whole batch's gradient."""

    def __new__(cls) -> nn.Module:
        return build_classifier("reference_cnn", [f"c{i}" for i in range(CLASSES)], SIDE, dropout=0.0)


def data(n: int, seed: int) -> ImageData:
    rng = np.random.default_rng(seed)
    labels = np.array([0] * (n // 2) + [1] * (n // 3) + [2] * (n - n // 2 - n // 3))
    images = rng.integers(0, 256, (n, SIDE, SIDE, 3), dtype=np.uint8)
    return ImageData.from_numpy(images, labels)


def train(memory_budget: int | None = None, imbalance: str = "none", **changes) -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    model = Tiny()
    config = TrainConfig(epochs=1, batch_size=24, max_steps_per_epoch=1, augment=AugmentConfig.none(), amp="off",
                         imbalance=imbalance, label_smoothing=0.1, schedule="constant", progress=False,
                         channels_last=False, **changes)
    result = fit(model, data(24, 0), data(12, 1), config, memory_budget=memory_budget)
    return model, result


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def assert_same_step(a: nn.Module, b: nn.Module) -> None:
    """Equal weights after one AdamW step (lr 1e-3) from the same start, within float tolerance: Adam's first step
    moves each weight by about lr x sign(gradient), so a tolerance of 5% of a step, where the step itself moved
    the weights by far more, tells accumulated gradients from different ones."""
    torch.manual_seed(0)
    start = weights(Tiny())
    moved = max(float((w - s).abs().mean()) for w, s in zip(weights(a), start))
    assert moved > 1e-4
    for x, y in zip(weights(a), weights(b)):
        torch.testing.assert_close(x, y, atol=5e-5, rtol=0)


def budget_for(micro: int) -> int:
    """A budget that fits `micro` images per step of Tiny at SIDE px, and not one more."""
    tiny = profile_model(Tiny(), SIDE)
    return training_memory(tiny, micro, "off").total


def test_resnet18_flops_match_torchvisions_published_count() -> None:
    counted = profile("resnet18", 224).forward_flops
    assert abs(counted - 2 * 1.814e9) / (2 * 1.814e9) < 0.05
    small, large = profile("resnet18", 112).activation_bytes, profile("resnet18", 224).activation_bytes
    assert 3.5 < large / small < 4.5


def test_profiling_a_real_model_changes_nothing_in_it() -> None:
    model = Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    profile_model(model, SIDE)
    assert not model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_largest_batch_is_the_largest_that_fits() -> None:
    tiny = profile_model(Tiny(), SIDE)
    budget = training_memory(tiny, 7, "off").total
    assert largest_batch(tiny, budget, 24, "off") == 7
    assert largest_batch(tiny, 1, 24, "off") == 0


@pytest.mark.parametrize("imbalance", ["none", "weighted_loss"])
def test_micro_batches_give_the_weights_of_whole_batches(imbalance: str, capsys) -> None:
    whole, whole_result = train(imbalance=imbalance)
    split, split_result = train(budget_for(5), imbalance=imbalance)
    assert whole_result.micro_batch is None and split_result.micro_batch == 5
    assert "batch 24 as 5 micro-batches of at most 5" in capsys.readouterr().out
    assert_same_step(whole, split)
    assert split_result.history["train_loss"].iloc[0] == pytest.approx(whole_result.history["train_loss"].iloc[0],
                                                                       rel=1e-5)


def test_a_budget_too_small_for_one_image_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not even one image per step fits"):
        train(1)


def test_without_a_budget_on_a_cpu_or_with_room_nothing_changes() -> None:
    plain, plain_result = train()
    roomy, roomy_result = train(10 * budget_for(24))
    assert plain_result.micro_batch is None and roomy_result.micro_batch is None and not roomy_result.cache_on_host
    for a, b in zip(weights(plain), weights(roomy)):
        assert torch.equal(a, b)


def test_out_of_memory_halves_the_micro_batch_and_redoes_the_step(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    whole, _ = train()
    kind = type(Tiny())
    forward = kind.forward

    def tight(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.training and len(x) > 6:
            raise OUT_OF_MEMORY("CUDA out of memory (simulated)")
        return forward(self, x)

    monkeypatch.setattr(kind, "forward", tight)
    split, result = train()
    assert result.micro_batch == 6  # 24 -> 12 -> 6
    out = capsys.readouterr().out
    assert "out of memory with micro-batches of 24" in out and "micro-batches of 6" in out
    assert_same_step(whole, split)
