"""The notebooks' Results sections: every number they quote is one of the run's own, every verdict follows the intervals."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from helpers.reporting import summaries


def summary(bacc: float, low: float, high: float, **extra: float) -> dict:
    """A metrics summary with a balanced accuracy and its interval."""
    return {"balanced_accuracy": bacc, "accuracy": extra.pop("accuracy", 0.5), "macro_auc": extra.pop("macro_auc", 0.8),
            "n_test": 1504, "ci95": {"balanced_accuracy": [low, high], **extra.pop("ci95", {})}, **extra}


def test_compare_follows_the_intervals() -> None:
    rows = {"a": summary(0.70, 0.66, 0.74), "b": summary(0.55, 0.50, 0.60), "c": summary(0.68, 0.59, 0.75)}
    assert summaries.compare("a", "b", rows) == "a beats b beyond the 95% intervals"
    assert summaries.compare("b", "a", rows) == "a beats b beyond the 95% intervals"
    assert "overlap" in summaries.compare("a", "c", rows)
    assert summaries.with_interval(rows["a"]) == "balanced accuracy 0.700 (95% CI 0.660–0.740)"
    assert summaries.with_interval({"balanced_accuracy": None}) == "balanced accuracy – (95% CI –––)"


def test_custom_cnn_quotes_its_inputs_and_marks_synthetic_data() -> None:
    rows = {"ref": summary(0.454, 0.409, 0.502, accuracy=0.737), "drop": summary(0.41, 0.37, 0.45),
            "ours": summary(0.62, 0.58, 0.66), "ours + TTA": summary(0.673, 0.621, 0.733, accuracy=0.788, macro_auc=0.932)}
    history = pd.DataFrame({"train_accuracy": [0.5, 0.9], "val_accuracy": [0.5, 0.7]})
    text = summaries.custom_cnn(rows, SimpleNamespace(data_source="ham10000", preset="cpu"), reference="ref",
                                no_dropout="drop", improved="ours",
                                baseline={"accuracy": 0.67, "balanced_accuracy": 1 / 7, "class": "nv"},
                                gaps={"dropout 0.5": summaries.last_gap(history), "dropout 0": 0.31},
                                weights={"reference": 1000, "improved": 2000}, sizes={"reference": 128, "improved": 64})
    for quoted in ("0.737", "0.454 (95% CI 0.409–0.502)", "+0.200 with dropout 0.5", "+0.310 with dropout 0",
                   "0.673 (95% CI 0.621–0.733)", "0.932", "2,000 weights at 64 px", "`cpu` preset", "1,504"):
        assert quoted in text, quoted
    assert "ours + TTA beats ref beyond the 95% intervals" in text and "Synthetic" not in text
    synthetic = summaries.custom_cnn(rows, SimpleNamespace(data_source="synthetic", preset="smoke"), reference="ref",
                                     no_dropout="drop", improved="ours", baseline={"accuracy": 0.6, "balanced_accuracy": 0.2,
                                     "class": "nv"}, gaps={"a": 0.1, "b": 0.2}, weights={"reference": 1, "improved": 2},
                                     sizes={"reference": 1, "improved": 2})
    assert synthetic.endswith(summaries.SYNTHETIC_NOTE) and "synthetic demo data" in synthetic


def test_resnet_transfer_names_the_checks_it_could_not_run() -> None:
    rows = {name: summary(0.6 + i / 100, 0.55 + i / 100, 0.65 + i / 100) for i, name in enumerate("spfqb")}
    keys = dict(zip(("scratch", "probe", "tuned", "plain", "best"), "spfqb"))
    common = dict(rows=keys, sizes={"scratch": 64, "probe": 96, "tuned": 96}, pretrained_arch="resnet18",
                  calibration={"model": "b", "temperature": 1.5, "before": 0.12, "after": 0.03}, cam_size=(3, 3))
    config = SimpleNamespace(data_source="ham10000", preset="cpu")
    none = summaries.resnet_transfer(rows, config, agreement=None, dermamnist=SimpleNamespace(models={}), **common)
    assert "no lesion masks, so no mask check" in none and "DermaMNIST: skipped." in none
    assert "T = 1.50 (over-confident before scaling)" in none and "0.120 before, 0.030 after" in none
    assert none.count("\n- ") >= 9  # a line per row and one per check
    agreement = SimpleNamespace(ratio=pd.Series({"all": 1.234}))
    derma = SimpleNamespace(models={"x": 1, "y": 2}, leaked_test_lesions=1234)
    full = summaries.resnet_transfer(rows, config, agreement=agreement, dermamnist=derma, **common)
    assert "3×3 feature map: 1.23 times" in full and "2 runs on the official split, 1,234 of whose" in full


def test_efficientnet_binary_reads_the_threshold_it_was_given() -> None:
    b = {"auc": 0.905, "sensitivity": 0.88, "specificity": 0.7, "n_test": 1504, "ci95": {"auc": [0.88, 0.93]}}
    a_ref = ({"auc": 0.93, "accuracy": 0.85, "ci95": {"auc": [0.91, 0.95]}}, {"auc": 0.92, "accuracy": 0.84})
    a_our = ({"auc": 0.96, "accuracy": 0.9, "ci95": {"auc": [0.955, 0.97]}}, {"auc": 0.955, "accuracy": 0.89})
    outcome = {"lesions": 500, "mel_lesions_per_1000": 100, "mel_missed_per_1000": 12, "mel_missed": 6,
               "mel_lesions": 50, "benign_flagged_per_1000": 300}
    text = summaries.efficientnet_binary(b, {"reference": a_ref, "our": a_our}, data_name="HAM10000",
                                         melanoma_name="melanoma10k", threshold=0.21, target_sensitivity=0.95,
                                         goal_auc=0.93, outcome=outcome, kept=990, images=1000)
    for quoted in ("AUC **0.905**", "goal of 0.93 is not reached", "threshold 0.21", "for 95% sensitivity",
                   "**12 of them benign**", "by 2.0 per 1,000", "990 after removing the 10", "do not overlap",
                   "by at most 0.010"):
        assert quoted in text, quoted


def test_scaling_study_counts_loose_fits_and_pairs_beyond_seed_noise() -> None:
    fits = pd.DataFrame({"label": ["cnn", "resnet18"], "n_points": [5, 2], "n_runs": [10, 4], "b": [0.4, float("nan")],
                         "b_sd": [0.1, float("nan")], "c": [0.2, float("nan")], "n_min": [100, 100], "n_max": [7000, 7000]})
    words = summaries.power_law_fits(fits)
    assert "**cnn**: 5 sizes, 10 runs (100 to 7,000 images): b = 0.40 ± 0.10, c = 0.20" in words
    assert "**resnet18**: 2 sizes, 4 runs: not fitted" in words and "in 1 of 2 arms" in words
    table = pd.DataFrame({"label": ["cnn", "cnn", "r18", "r18 (pretrained)"], "model": ["cnn", "cnn", "r18", "r18"],
                          "pretrained": [False, False, False, True], "fraction": [0.5, 1.0, 1.0, 1.0],
                          "n_train": [3500, 7000, 7000, 7000], "balanced_accuracy": [0.5, 0.6, 0.55, 0.7]})
    overtakes = pd.DataFrame({"verdict": ["within seed noise", "r18 overtakes cnn"]})
    text = summaries.scaling_study(table, fits, overtakes, 0.02, n_test=1504)
    assert "**The grid:** 4 runs in 3 arms, training sets of 3,500 to 7,000 images" in text
    assert text.index("**r18 (pretrained)**: 0.700") < text.index("**cnn**: 0.600")  # best first
    assert "**r18**, 7,000 training images: 0.550 from scratch, 0.700 pretrained" in text
    assert "of 2 pairs of from-scratch models, 1 differ" in text and "(0.040 in balanced accuracy)" in text
    assert "no gap between models can be told apart" in summaries.scaling_study(table, fits, overtakes, None, n_test=1)


def test_external_test_quotes_the_metrics_it_is_given() -> None:
    import json
    from pathlib import Path

    metrics = json.loads((Path(__file__).parent / "fixtures" / "07_external_test.smoke-real.json").read_text())
    external = metrics["external"]["name"]
    by_split = {"test": {}, external: {}}
    for name, entry in metrics["models"].items():
        system, split = name.rsplit(" · ", 1)
        by_split[split][system] = entry
    best = metrics["choices"]["best"]
    text = summaries.external_test(by_split, metrics["choices"], metrics["selective"], metrics["goals"],
                                   SimpleNamespace(data_source="ham10000"), internal="test", external=external)
    outside = by_split[external][best]["balanced_decision"]
    assert f"**{best}**" in text
    assert summaries.with_interval(outside) in text
    assert f"| {next(iter(metrics['goals']))} |" in text
    alone = summaries.external_test({"test": by_split["test"]}, metrics["choices"], {}, {},
                                    SimpleNamespace(data_source="synthetic"), internal="test", external=None)
    assert "No external test set" in alone and "Synthetic" in alone
