"""Training and inference throughput of depthwise-convolution networks under CPU bf16 autocast, with and without
their depthwise layers in fp32 (helpers.core.precision.depthwise_in_fp32), against plain fp32, in one process.

Random inputs and labels (throughput does not depend on the pixels), channels_last, AdamW, after warm-up steps.
The last line printed is a JSON object with the figures; --out also writes it to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from helpers.course.config import hardware_description
from helpers.core.io import write_json
from helpers.models import build_classifier
from helpers.core.precision import depthwise_in_fp32

MODES = {"bf16": ("bf16", False), "bf16, depthwise fp32": ("bf16", True), "fp32": ("off", False)}


def throughput(model_name: str, image_size: int, mode: str, train: bool, batch_size: int, steps: int) -> float:
    """Images per second of training (forward, backward, AdamW step) or inference steps, after 3 warm-up steps."""
    amp, depthwise = MODES[mode]
    torch.manual_seed(0)
    model = build_classifier(model_name, [str(i) for i in range(7)], image_size).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(batch_size, 3, image_size, image_size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch_size,))
    model.train(train)

    def step() -> None:
        with torch.set_grad_enabled(train), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp == "bf16"):
            logits = model(x)
        if train:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(logits.float(), y).backward()
            optimizer.step()

    scope = depthwise_in_fp32(model, amp, "cpu") if depthwise else contextlib.nullcontext()
    with scope:
        for _ in range(3):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    """Measure every mode for each model and size; print a table and the JSON."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", action="append", help="a model name, repeatable (default: efficientnet_lite0)")
    p.add_argument("--image-size", type=int, action="append", help="repeatable (default: 64 and 96)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args()
    rows = []
    for model_name in args.model or ["efficientnet_lite0"]:
        for size in args.image_size or [64, 96]:
            for train in (True, False):
                speeds = {mode: throughput(model_name, size, mode, train, args.batch_size, args.steps) for mode in MODES}
                rows.append({"model": model_name, "image_size": size, "step": "train" if train else "inference",
                             "img_per_s": {m: round(v, 1) for m, v in speeds.items()},
                             "ratio_vs_bf16": round(speeds["bf16, depthwise fp32"] / speeds["bf16"], 2)})
                print(f"{model_name} {size} px {rows[-1]['step']:9s} "
                      + "  ".join(f"{m}: {v:6.1f} img/s" for m, v in speeds.items())
                      + f"  ratio {rows[-1]['ratio_vs_bf16']:.2f}", flush=True)
    record = {"date": datetime.date.today().isoformat(), "hardware": hardware_description(),
              "threads": torch.get_num_threads(), "batch_size": args.batch_size, "steps": args.steps, "rows": rows}
    text = json.dumps(record)
    if args.out:
        write_json(record, args.out)
    print(text)


if __name__ == "__main__":
    main()
