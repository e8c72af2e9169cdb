"""How long each notebook takes, and how much memory it needs, under a preset on a device: the cost model's estimate.

    python -m helpers.budget --preset gpu --device t4            # per notebook: trainings, FLOPs, minutes, peak GiB
    python -m helpers.budget --preset cpu --device this --json   # on the machine at hand (calibrated on first use)
    python -m helpers.budget --calibrate [--out FILE]            # measure this machine (CPU or GPU) for the cost model

Devices: this (the machine at hand), cpu (the course's 2-core CPU, from its committed calibration) and the GPU
classes t4, l4, a100, h100 (public training throughputs, helpers/course/cost/devices.py). Estimates count the real data
sets' sizes (HAM10000 10,015 images, DermaMNIST, melanoma10k), or the data at hand with --device this and
--here. On a GPU, --calibrate measures the gpu and full presets' models at their sizes and batches
(img/s and torch.cuda.max_memory_allocated) into models/calibration/gpu-<class>.json, which the cost model then
prefers over the public figures for that class (`make calibrate-gpu`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    """Print the estimates, or calibrate this machine."""
    from .core.cli import run

    return run(_main, argv)


def _parser() -> argparse.ArgumentParser:
    from .core.cli import add_debug_argument
    from .course.cost.series import DEVICES

    parser = argparse.ArgumentParser(prog="python -m helpers.budget", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="auto", help="smoke, cpu, gpu, full or auto (default auto)")
    parser.add_argument("--device", default="this", choices=DEVICES, help="where the notebooks would run (default this)")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    parser.add_argument("--here", action="store_true", help="count the data configured here, not the real sets' sizes")
    parser.add_argument("--calibrate", action="store_true", help="measure this machine for the cost model")
    parser.add_argument("--reference", action="store_true",
                        help="with --calibrate on the course's 2-core CPU: write helpers/course/cost/cpu_2core.json")
    parser.add_argument("--presets", nargs="*", help="with --calibrate: the presets whose models to measure "
                        "(default: cpu on a CPU, gpu and full on a GPU)")
    parser.add_argument("--out", type=Path, help="with --calibrate: where to write the calibration")
    parser.add_argument("--write-docs", action="store_true",
                        help="regenerate the table of docs/estimates.md (every preset on the 2-core CPU, T4, A100, H100)")
    add_debug_argument(parser)
    return parser


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.calibrate:
        return _calibrate(args)
    if args.write_docs:
        return _write_docs()
    from .course.config import PRESETS, resolve_config, resolve_preset
    from .course.cost.series import estimate_series

    preset = args.preset if args.preset in PRESETS else resolve_preset(args.preset)  # a named preset is what is asked
    estimates = estimate_series(preset, args.device, here=resolve_config(preset) if args.here else None)
    if args.json:
        print(json.dumps(budget_json(preset, args.device, estimates), indent=2))
        return 0
    for estimate in estimates.values():
        print(estimate.line())
        for note in estimate.notes:
            print(f"    {note}")
    low, high = (sum(e.minutes[i] for e in estimates.values()) for i in (0, 1))
    print(f"series: {low:.0f}–{high:.0f} min on {next(iter(estimates.values())).device} (preset {preset})")
    return 0


def budget_json(preset: str, device: str, estimates: dict[str, Any]) -> dict[str, Any]:
    """The --json form: {"preset", "device", "notebooks": {name: {"minutes": [low, high], "peak_gib", "trainings"}}}."""
    return {"preset": preset, "device": device, "notebooks": {name: e.to_dict() for name, e in estimates.items()}}


def _write_docs() -> int:
    from .course.cost.series import estimates_table, with_table
    from .data.source import project_root
    from .core.io import atomic_open

    path = project_root() / "docs" / "estimates.md"
    text = with_table(path.read_text(encoding="utf-8"), estimates_table())
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"table regenerated in {path.relative_to(project_root())}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from .course.cost.calibration import calibrate, write_calibration
    from .course.cost.plan import DataSizes
    from .course.cost.series import REFERENCE_CPU, SERIES, every_pretrained, notebook_plan, work_of
    from .data.source import models_home
    from .data.tensors import default_device
    from .core.machine import hardware_description

    device = default_device()
    presets = args.presets or (["gpu", "full"] if device.type == "cuda" else ["cpu"])
    plans = [notebook_plan(nb, preset, DataSizes(), every_pretrained) for preset in presets for nb in SERIES]
    hardware = hardware_description()
    calibration = calibrate(work_of(plans), hardware, device)
    if args.out:
        out = args.out
    elif args.reference:
        out = REFERENCE_CPU
    elif device.type == "cuda":
        out = models_home() / "calibration" / f"gpu-{gpu_class(hardware)}.json"
    else:
        from .course.cost.series import machine_key

        out = models_home() / "calibration" / f"{machine_key(hardware)}.json"
    write_calibration(calibration, out)
    print(f"calibration of {hardware}: {len(calibration.entries)} entries in {calibration.seconds:.0f} s -> {out}")
    return 0


def gpu_class(hardware: str) -> str:
    """The GPU class key of a hardware line (e.g. 'GPU Tesla T4' -> 't4'), else 'other'."""
    from .course.cost.devices import GPUS

    name = hardware.lower()
    return next((key for key in GPUS if key in name.replace("-", " ").split() or key in name), "other")


if __name__ == "__main__":
    sys.exit(main())
