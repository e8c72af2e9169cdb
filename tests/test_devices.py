"""The cost model's GPU classes: every family has a sustained rate below the peak, every figure names its source,
and registry names map to the families whose benchmark model they resemble."""

from __future__ import annotations

import pytest

from helpers.course.cost.devices import (FAMILIES, FORWARD_FLOPS, GPUS, SINGLE_SOURCE_SPREAD, Measurement, family_of,
                                  sustained_of)


@pytest.mark.parametrize("key", sorted(GPUS))
def test_every_gpu_has_all_families_with_a_sustained_rate_below_its_peak(key: str) -> None:
    gpu = GPUS[key]
    assert gpu.key == key and set(gpu.sustained) == set(FAMILIES)
    for family, (low, high) in gpu.sustained.items():
        assert 0 < low <= high < gpu.peak_tflops * 1e12, (family, low, high)


@pytest.mark.parametrize("key", sorted(GPUS))
def test_the_spread_of_each_family_is_that_of_its_measurements(key: str) -> None:
    gpu = GPUS[key]
    for family in FAMILIES:
        rates = [m.flops_per_s for m in gpu.measurements if family_of(m.model) == family]
        assert rates, (key, family)
        if len(rates) > 1:
            assert gpu.sustained[family] == (min(rates), max(rates))


def test_a_single_figure_spans_15_percent_either_side() -> None:
    only = Measurement("resnet50", 1000, 256, "amp fp16", "somewhere")
    low, high = sustained_of([only])["conv"]
    rate = 1000 * 3 * FORWARD_FLOPS["resnet50"]
    assert low == pytest.approx(rate * (1 - SINGLE_SOURCE_SPREAD))
    assert high == pytest.approx(rate * (1 + SINGLE_SOURCE_SPREAD))


@pytest.mark.parametrize("key", sorted(GPUS))
def test_every_measurement_names_its_source_and_a_benchmark_model(key: str) -> None:
    for m in GPUS[key].measurements:
        assert m.source.strip(), m
        assert m.model in FORWARD_FLOPS and m.images_per_s > 0, m
        assert m.precision.startswith("amp"), m


def test_mixed_precision_and_overheads_follow_the_compute_capability() -> None:
    assert GPUS["t4"].amp == "fp16"  # Turing: no bf16
    assert all(GPUS[key].amp == "bf16" for key in ("l4", "a100", "h100"))
    assert all(0.001 <= gpu.step_overhead_s <= 0.01 for gpu in GPUS.values())
    assert GPUS["t4"].memory_gib < 16 < GPUS["l4"].memory_gib < GPUS["a100"].memory_gib < GPUS["h100"].memory_gib


@pytest.mark.parametrize(("model", "family"), [
    ("resnet18", "conv"), ("resnet50", "conv"), ("resnet152", "conv"), ("alexnet", "conv"), ("vgg16", "conv"),
    ("reference_cnn", "conv"), ("improved_cnn", "conv"), ("densenet121", "conv"),
    ("efficientnet_b0", "depthwise"), ("efficientnet_lite0", "depthwise"), ("mobilenet_v3_small", "depthwise"),
    ("mnasnet1_0", "depthwise"), ("regnet_y_400mf", "depthwise"),
    ("vit_b_16", "transformer"), ("vit_tiny", "transformer"), ("mixer_b16_224", "transformer"),
    ("mixer_small", "transformer"), ("deit_small_patch16_224", "transformer"), ("swin_t", "transformer"),
])
def test_family_of_registry_names(model: str, family: str) -> None:
    assert family_of(model) == family
