"""The scaling study: nested subsets, the grid, one result file per run with resume and shards, power-law fits, overtaking, the 06 metrics contract."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from helpers.course import plots, scaling
from helpers.scaling import main as scaling_main
from helpers.data.dataset import SplitData, load_split_data
from helpers.course.powerlaw import fit_arms, fit_power_law, grid_notes, overtaking, power_law, seed_spread
from helpers.course.recipes import RECIPES
from helpers.reporting.results import FIT_KEYS, SCALING_ROW_KEYS, validate_metrics
from helpers.course.scaling import GridData, ScalingRow, build_grid, data_fingerprint, nested_subsets, row_id

TINY = {"models": ["improved_cnn"], "image_size": 16, "fractions": [0.5, 1.0], "seeds": [0, 1], "seeds_up_to": 0.5,
        "pretrained_models": [], "pretrained_fractions": [], "epochs": 1, "min_images": 96, "batch_size": 32,
        "lr": 2e-3, "pretrained_lr": 1e-3, "weight_decay": 0.05, "n_boot": 20, "resume": True}


def train_rows(n_lesions: int = 200, seed: int = 0) -> pd.DataFrame:
    """A train split's rows: lesions of 1-3 images, seven classes of very different sizes, one lesion of mixed dx."""
    rng = np.random.default_rng(seed)
    classes = rng.choice(["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df"], n_lesions,
                         p=[0.6, 0.12, 0.12, 0.07, 0.05, 0.02, 0.02])
    classes[:7] = ["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df"]
    sizes = rng.integers(1, 4, n_lesions)
    rows = pd.DataFrame({"lesion_id": np.repeat([f"L{i:04d}" for i in range(n_lesions)], sizes),
                         "dx": np.repeat(classes, sizes)})
    rows = rows.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # images of a lesion not adjacent
    return rows


def lesions_of(rows: pd.DataFrame, positions: np.ndarray) -> set[str]:
    return set(rows.iloc[positions]["lesion_id"])


def test_nested_subsets_are_nested_stratified_and_keep_lesions_whole() -> None:
    rows = train_rows()
    fractions = [0.05, 0.1, 0.25, 0.5, 1.0]
    subsets = nested_subsets(rows, fractions, seed=3)
    majority = rows.groupby("lesion_id")["dx"].agg(lambda s: s.mode().iloc[0])
    per_class = majority.value_counts()
    for small, big in zip(fractions, fractions[1:]):
        assert lesions_of(rows, subsets[small]) <= lesions_of(rows, subsets[big])
    for fraction, positions in subsets.items():
        chosen = lesions_of(rows, positions)
        assert set(rows.index[rows["lesion_id"].isin(chosen)]) == set(positions)  # every image of a chosen lesion
        counts = majority[sorted(chosen)].value_counts()
        for dx, n in per_class.items():
            assert counts.get(dx, 0) == math.ceil(round(fraction * n, 9)), (fraction, dx)
    assert len(subsets[1.0]) == len(rows)
    assert np.array_equal(nested_subsets(rows, [0.25], seed=3)[0.25], subsets[0.25])  # deterministic
    assert not np.array_equal(nested_subsets(rows, [0.25], seed=4)[0.25], subsets[0.25])


def test_nested_subsets_ceil_is_exact_and_fractions_are_checked() -> None:
    rows = pd.DataFrame({"lesion_id": [f"L{i}" for i in range(30)], "dx": ["nv"] * 30})
    assert len(nested_subsets(rows, [0.1])[0.1]) == 3  # 0.1 * 30 = 3.0000000000000004 in floating point
    with pytest.raises(ValueError, match="fractions"):
        nested_subsets(rows, [0.0])
    with pytest.raises(ValueError, match="lesion_id"):
        nested_subsets(rows.drop(columns="lesion_id"), [0.5])


def test_subset_table_counts() -> None:
    rows = train_rows()
    table = scaling.subset_table(rows, nested_subsets(rows, [0.5, 1.0]))
    assert table.loc[1.0, "images"] == len(rows) and table.loc[1.0, "lesions"] == rows["lesion_id"].nunique()
    assert table.loc[0.5, ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]].sum() == table.loc[0.5, "images"]


def test_build_grid_seeds_pretrained_arms_and_dropped_cells() -> None:
    gpu = RECIPES["06_scaling_study"]["full"]  # the reference study's grid
    full = build_grid(gpu, can_pretrain=lambda m: True)
    only_lite0 = build_grid(gpu, can_pretrain=lambda m: m == "efficientnet_lite0")
    assert len({(r.label, r.fraction, r.seed) for r in full}) == len(full)
    assert {r.seed for r in full if r.fraction <= 0.25 and not r.pretrained} == {0, 1, 2}
    assert {r.seed for r in full if r.fraction > 0.25} == {0}
    assert {r.label for r in only_lite0 if r.pretrained} == {"efficientnet_lite0 (pretrained)"}
    assert {r.fraction for r in only_lite0 if r.label == "efficientnet_lite0"} == set(gpu["pretrained_fractions"])
    assert {r.image_size for r in full if r.model == "vit_b_16"} == {224}
    assert {r.lr for r in full if r.pretrained} == {gpu["pretrained_lr"]}
    cpu = build_grid(RECIPES["06_scaling_study"]["cpu"], can_pretrain=lambda m: m == "efficientnet_lite0")
    dropped = scaling.dropped_cells(cpu, full)
    assert dropped.loc["resnet152", "dropped (fraction, seed)"] == "whole arm"
    assert "0.02 seed 0" in dropped.loc["resnet18", "dropped (fraction, seed)"]
    assert dropped.loc["resnet18", "image size"] == "64 px (reference 128)"
    table = scaling.grid_table(cpu)
    assert table.loc["resnet18", 0.05] == 2 and table.loc["resnet18", 1.0] == 1


def test_pretrained_status_says_why() -> None:
    status = scaling.pretrained_status(["mixer_small", "efficientnet_lite0"])
    assert not status.loc["mixer_small", "available"] and "no published" in status.loc["mixer_small", "status"]


def test_repeats_reach_min_images() -> None:
    row = ScalingRow("improved_cnn", False, 0.05, 0, 16, epochs=2, min_images=3200, batch_size=64, lr=1e-3,
                     weight_decay=0.0)
    assert scaling.repeats(row, 350) == 5 and scaling.repeats(row, 7000) == 1


@pytest.fixture(scope="module")
def data(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SplitData:
    return load_split_data(synthetic_dir, 16, cache_dir=tmp_path_factory.mktemp("cache"), name="syn", device="cpu",
                           progress=False)


@pytest.fixture(scope="module")
def finished(data: SplitData, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[ScalingRow], Path, list[dict]]:
    rows = [row for row in build_grid(TINY) if row.seed == 0]  # fractions 0.5 and 1.0
    results = tmp_path_factory.mktemp("results")
    records = scaling.run_grid(rows, GridData("unused", "syn", loaded={16: data}), results, progress=False)
    return rows, results, records


def test_row_ids_are_stable_and_depend_on_settings_and_data(data: SplitData) -> None:
    row = build_grid(TINY)[0]
    fingerprint = data_fingerprint(data, "syn")
    assert row_id(row, fingerprint) == row_id(copy.deepcopy(row), dict(fingerprint))
    assert row_id(row, fingerprint).startswith("improved_cnn-f0.5-s0-")
    assert row_id(row, {**fingerprint, "hash": "other"}) != row_id(row, fingerprint)
    other = ScalingRow(**{**row.__dict__, "lr": 1e-2})
    assert row_id(other, fingerprint) != row_id(row, fingerprint)


def test_run_grid_writes_one_record_per_row(finished: tuple, data: SplitData) -> None:
    rows, results, records = finished
    files = sorted(results.glob("*.json"))
    assert len(files) == len(rows) == 2 and not list(results.glob(".*"))  # no temporary files left
    record = json.loads(files[0].read_text())
    assert record["id"] == files[0].stem and record in records
    first = records[0]
    assert first["fraction"] == 0.5 and first["n_train"] < len(data.train) and first["n_train_lesions"] > 0
    assert first["train_images_seen"] >= 0.7 * TINY["min_images"]  # the subset was repeated to reach min_images
    assert first["train_compute_flops"] == 3 * first["flops_per_image"] * first["train_images_seen"]
    assert first["error"] == pytest.approx(1 - first["balanced_accuracy"])
    assert set(SCALING_ROW_KEYS) <= set(scaling.scaling_rows(records)[0])


def test_run_grid_resumes_without_retraining(finished: tuple, data: SplitData, monkeypatch: pytest.MonkeyPatch) -> None:
    rows, results, records = finished
    grid_data = GridData("unused", "syn", loaded={16: data})

    def no_training(*args: object, **kwargs: object) -> dict:
        raise AssertionError("a finished row was trained again")

    monkeypatch.setattr(scaling, "run_row", no_training)
    assert scaling.run_grid(rows, grid_data, results, progress=False) == records
    with pytest.raises(AssertionError, match="trained again"):
        scaling.run_grid(rows, grid_data, results, resume=False, progress=False)


def test_merge_reads_every_result_file(finished: tuple, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, results, records = finished
    table = scaling.results_table(scaling.load_records(results))
    assert sorted(table["id"]) == sorted(r["id"] for r in records)
    assert scaling_main(["merge", "--preset", "smoke", "--results", str(results), "--out", str(tmp_path / "rows.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "rows.csv")) == len(records)
    assert scaling.contract_models(records) == {"improved_cnn, 100% of train, seed 0": records[1]["summary"]}


def test_cli_shards_split_the_rows(synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKIN_LESION_PRESET", raising=False)
    base = ["--preset", "smoke", "--data-dir", str(synthetic_dir), "--results", str(tmp_path), "--dry-run"]
    listed = {}
    for shard in ("1/2", "2/2", "1/1"):
        capsys.readouterr()
        assert scaling_main([*base, "--shard", shard]) == 0
        listed[shard] = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("pending")]
    assert set(listed["1/2"]).isdisjoint(listed["2/2"]) and sorted(listed["1/2"] + listed["2/2"]) == sorted(listed["1/1"])
    assert len(listed["1/1"]) == len(build_grid(RECIPES["06_scaling_study"]["smoke"]))
    with pytest.raises(SystemExit):
        scaling_main([*base, "--shard", "3/2"])


def test_power_law_fit_recovers_parameters() -> None:
    n = np.array([100, 200, 500, 1000, 2000, 5000, 10000] * 2)
    error = power_law(n, 3.0, 0.4, 0.15) + np.r_[np.zeros(7), np.full(7, 1e-4)]
    fit = fit_power_law(n, error)
    assert fit["a"] == pytest.approx(3.0, rel=0.05) and fit["b"] == pytest.approx(0.4, abs=0.02)
    assert fit["c"] == pytest.approx(0.15, abs=0.01) and fit["n_points"] == 7 and fit["n_runs"] == 14
    assert (fit["n_min"], fit["n_max"]) == (100, 10000)
    assert fit["note"] == ""


def test_power_law_fit_says_when_it_is_ill_determined() -> None:
    two = fit_power_law(np.array([100, 1000]), np.array([0.6, 0.4]))
    assert two["a"] is None and "not fitted" in two["note"]
    three = fit_power_law(np.array([100, 1000, 10000]), np.array([0.6, 0.45, 0.4]))
    assert three["b"] is not None and "only 3 sizes" in three["note"]
    flat = fit_power_law(np.array([100, 300, 1000, 3000]), np.array([0.5, 0.52, 0.49, 0.51]))
    assert flat["note"]  # error does not fall: a, b or their uncertainty say so


def study_table() -> pd.DataFrame:
    """A small grid: 'big' worse than 'small' at n < 1000 and better from 1000 on; 'huge' never overtakes."""
    n = np.array([100, 300, 1000, 3000, 10000])
    laws = {"small": (1.0, 0.2, 0.2, 1e6), "big": (8.0, 0.5, 0.1, 1e7), "huge": (1.0, 0.1, 0.3, 1e8)}
    rows = []
    for label, (a, b, c, parameters) in laws.items():
        for seed in (0, 1):
            error = power_law(n, a, b, c) + 0.002 * seed
            rows += [{"label": label, "model": label, "pretrained": False, "parameters": parameters, "fraction": f,
                      "n_train": m, "seed": seed, "error": e, "balanced_accuracy": 1 - e,
                      "ci95_balanced_accuracy": [1 - e - 0.05, 1 - e + 0.05]}
                     for f, m, e in zip([0.01, 0.03, 0.1, 0.3, 1.0], n, error)]
    return pd.DataFrame(rows)


def test_overtaking_measured_and_fitted() -> None:
    table = study_table()
    fits = fit_arms(table)
    result = overtaking(table, fits, spread=0.001).set_index(["smaller", "bigger"])
    assert result.loc[("small", "big"), "measured: overtakes from n"] == 1000
    assert 300 < result.loc[("small", "big"), "fitted: overtakes from n"] <= 1000
    assert result.loc[("small", "huge"), "verdict"] == "does not overtake within the grid"
    assert pd.isna(result.loc[("small", "huge"), "measured: overtakes from n"])
    assert list(fits.columns[:7]) == ["label", "model", "pretrained", "parameters", "a", "b", "c"]
    assert set(FIT_KEYS) <= set(fits.columns)


def test_grid_notes_name_the_gaps() -> None:
    table = study_table()
    table = table[~((table["seed"] == 1) & (table["fraction"] > 0.1))]
    notes = grid_notes(table, fit_arms(table), seed_spread(table))
    assert any("one seed only" in note and "fraction 0.3 (every arm); 1 (every arm)" in note for note in notes)
    assert any("seed-to-seed SD" in note for note in notes) and any("95% interval" in note for note in notes)


def test_scaling_plots_draw_every_arm() -> None:
    table = study_table()
    fits = fit_arms(table)
    ax = plots.scaling_error(table, fits)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.get_legend().get_texts()) == 3 and len(ax.lines) == 6  # means and fitted curve per arm
    ax = plots.scaling_metric(table, "balanced_accuracy")
    assert len(ax.get_legend().get_texts()) == 3
    ax = plots.scaling_cost(table, "parameters")
    assert ax.get_xscale() == "log" and len(ax.collections) == 3
    plt.close("all")


def scaling_metrics(records: list[dict]) -> dict:
    from helpers.course.config import Config
    from helpers.reporting.series import metrics_header

    config = Config(preset="smoke", device="cpu", hardware="CPU test", data_source="synthetic", data_root="data/x",
                    data_origin="test", image_size=16, epochs=1, batch_size=32, max_images=None, seed=0)
    metrics = metrics_header(config, "06_scaling_study", 140, "lesion_disjoint", 0.0)
    metrics["models"] = scaling.contract_models(records)
    metrics["scaling"] = scaling.scaling_rows(records)
    metrics["fits"] = json.loads(fit_arms(scaling.results_table(records)).to_json(orient="records"))
    return json.loads(json.dumps(metrics))


def test_metrics_contract_of_the_scaling_study(finished: tuple) -> None:
    metrics = scaling_metrics(finished[2])
    assert validate_metrics(metrics, "06_scaling_study") == []
    assert any("scaling must be a non-empty list" in p for p in validate_metrics({**metrics, "scaling": []}, "06_scaling_study"))
    assert any("missing fits" in p for p in validate_metrics({k: v for k, v in metrics.items() if k != "fits"}, "06_scaling_study"))
    broken = copy.deepcopy(metrics)
    del broken["scaling"][0]["n_train"]
    broken["scaling"][1]["balanced_accuracy"] = 1.5
    broken["fits"][0]["b"] = "steep"
    problems = validate_metrics(broken, "06_scaling_study")
    assert "scaling[0]: missing n_train" in problems
    assert any(p.startswith("scaling[1]: balanced_accuracy must be") for p in problems)
    assert any(p.startswith("fits[0]: b must be a number or null") for p in problems)
    others = {**{k: v for k, v in metrics.items() if k not in ("scaling", "fits")}, "notebook": "03_custom_cnn"}
    assert validate_metrics(others, "03_custom_cnn") == []  # only 06 needs the lists
