"""The lesion bootstrap (helpers.evaluation.metrics.bootstrap_ci) against a plain per-resample loop over scikit-learn,
in one process, on the same resamples: the intervals must agree, and the ratio of the times is the speed-up.

    python benchmarks/bootstrap_ci.py [--images 1500] [--n-boot 1000] [--out benchmarks/results/bootstrap-ci.json]
    python benchmarks/bootstrap_ci.py --smoke      # 200 images, 50 resamples: checks the script works

The data are the fake predictions of tests/test_metrics.py's bootstrap test (a mediocre 7-class classifier, two
images per lesion, class df in one lesion only, so that about a third of the resamples lack it and skip its recall).
Two metric sets: that test's (macro AUC and the recall of df) and what every metrics_summary computes (accuracy,
balanced accuracy, macro F1, macro AUC). The baseline draws the same lesion resamples (the same generator, seed and
draw shape), gathers each resample's images and calls scikit-learn per resample. Ours is timed as the best of 3 runs
after a warm-up, the baseline once. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from helpers.core.io import write_json
from helpers.core.machine import hardware_description
from helpers.data.labels import DX_CLASSES
from helpers.evaluation.metrics import DEFAULT_CI_METRICS, bootstrap_ci

CASES = {"test_metrics case": ("macro_auc", "recall_df"), "metrics_summary set": DEFAULT_CI_METRICS}


def fake_predictions(n: int, seed: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, probabilities, lesion ids) as tests/test_metrics.py's bootstrap test builds them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(DX_CLASSES), n)
    logits = rng.normal(size=(n, len(DX_CLASSES)))
    logits[np.arange(n), y] += 1.5
    probs = np.exp(logits - logits.max(1, keepdims=True))
    y[y == 3] = 2
    y[:2] = 3  # class 3 (df) lives in one lesion only
    return y, probs / probs.sum(1, keepdims=True), np.arange(n) // 2


def baseline_ci(y: np.ndarray, probs: np.ndarray, groups: np.ndarray, metrics: tuple[str, ...], n_boot: int,
                seed: int = 0) -> dict[str, tuple[float, float]]:
    """The same percentile intervals by a loop: per resample, its images gathered and scored with scikit-learn."""
    _, lesion = np.unique(groups, return_inverse=True)
    n_lesions = int(lesion.max()) + 1
    members = [np.flatnonzero(lesion == k) for k in range(n_lesions)]
    draws = np.random.default_rng(seed).integers(0, n_lesions, size=(n_boot, n_lesions))  # as bootstrap_ci draws
    labels = np.arange(probs.shape[1])
    values: dict[str, list[float]] = {name: [] for name in metrics}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in draws:
            index = np.concatenate([members[k] for k in row])
            yt, pr = y[index], probs[index]
            pred = pr.argmax(1)
            present = np.unique(yt)
            for name in metrics:
                if name == "accuracy":
                    value = skm.accuracy_score(yt, pred)
                elif name == "balanced_accuracy":
                    value = skm.balanced_accuracy_score(yt, pred)
                elif name == "macro_f1":
                    value = skm.f1_score(yt, pred, average="macro", zero_division=0)
                elif name == "macro_auc":
                    value = (np.mean([skm.roc_auc_score(yt == c, pr[:, c]) for c in present])
                             if len(present) >= 2 else math.nan)
                else:  # recall_<class>
                    c = DX_CLASSES.index(name.removeprefix("recall_"))
                    value = skm.recall_score(yt, pred, labels=labels, average=None, zero_division=np.nan)[c]
                values[name].append(float(value))
    intervals = {}
    for name, found in values.items():
        finite = np.asarray(found)[np.isfinite(found)]
        low, high = np.quantile(finite, [0.025, 0.975])
        intervals[name] = (float(low), float(high))
    return intervals


def measure(n_images: int, n_boot: int, metrics: tuple[str, ...]) -> dict:
    """Times of ours (best of 3 after a warm-up) and of the baseline (once), their ratio, and the largest difference
    between the two sets of interval ends."""
    y, probs, groups = fake_predictions(n_images)
    kwargs = {"metrics": metrics, "classes": DX_CLASSES, "n_boot": n_boot}
    ours_ci = bootstrap_ci(y, probs, groups, **kwargs)  # warm-up
    ours = []
    for _ in range(3):
        start = time.perf_counter()
        bootstrap_ci(y, probs, groups, **kwargs)
        ours.append(time.perf_counter() - start)
    start = time.perf_counter()
    base_ci = baseline_ci(y, probs, groups, metrics, n_boot)
    baseline = time.perf_counter() - start
    gap = max(abs(a - b) for name in metrics for a, b in zip(ours_ci[name], base_ci[name]))
    return {"metrics": list(metrics), "images": n_images, "lesions": int(len(np.unique(groups))), "n_boot": n_boot,
            "baseline_s": round(baseline, 3), "ours_s": round(min(ours), 4), "ratio": round(baseline / min(ours), 1),
            "largest_interval_difference": gap}


def main() -> None:
    """Measure both metric sets; print a line each and the JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1500)
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--smoke", action="store_true", help="200 images, 50 resamples")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args()
    images, n_boot = (200, 50) if args.smoke else (args.images, args.n_boot)
    rows = []
    for case, metrics in CASES.items():
        rows.append({"case": case, **measure(images, n_boot, metrics)})
        row = rows[-1]
        print(f"{case}: baseline {row['baseline_s']:.2f} s, ours {row['ours_s']:.3f} s, ratio {row['ratio']:.1f}, "
              f"intervals differ by at most {row['largest_interval_difference']:.1e}", flush=True)
        if row["largest_interval_difference"] > 1e-9:
            raise SystemExit(f"{case}: the intervals disagree by {row['largest_interval_difference']}")
    record = {"date": datetime.date.today().isoformat(), "hardware": hardware_description(), "rows": rows}
    if args.out:
        write_json(record, args.out)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
