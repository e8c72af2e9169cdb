"""The cost model: FLOP counts against published ones, plans that follow the notebooks, the calibration's CPU path,
the gpu preset within a free Colab T4's budget, the estimate every notebook prints, and the docs table kept current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.budget import main as budget_main
from helpers.course.cost.calibration import Calibration, Entry, calibrate, read_calibration, write_calibration
from helpers.course.cost.estimate import Target, estimate_notebook
from helpers.course.cost.plan import TTA_VIEWS, DataSizes, plan_notebook
from helpers.course.cost.series import (CALIBRATION_ENV, SERIES, TABLE_BEGIN, TABLE_END, estimate_series, estimates_table,
                                 every_pretrained, notebook_plan, over_budget, target_for, work_of)
from helpers.models.profile import profile
from helpers.course.recipes import resolve_recipe
from helpers.course.recipes.scaling_study import build_grid

ROOT = Path(__file__).resolve().parents[1]

# torchvision's model tables give GFLOPS that count multiply-adds (e.g. ResNet18_Weights.IMAGENET1K_V1: 1.81);
# FlopCounterMode counts 2 FLOPs per multiply-add, so ours should be twice theirs.
PUBLISHED_GMACS = {"resnet18": 1.81, "resnet50": 4.09, "efficientnet_b0": 0.39, "vit_b_16": 17.56}


@pytest.mark.parametrize("model", sorted(PUBLISHED_GMACS))
def test_forward_flops_are_within_5_percent_of_torchvisions_published_counts(model: str) -> None:
    counted = profile(model, 224).forward_flops
    published = 2 * PUBLISHED_GMACS[model] * 1e9
    assert abs(counted - published) / published < 0.05, (model, counted / 1e9)


def test_a_profile_cached_by_another_version_of_the_counter_is_counted_again(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIN_LESION_MODELS_DIR", str(tmp_path))
    key = "resnet18@32"
    stale = {"model": "resnet18", "image_size": 32, "forward_flops": 1, "parameters": 1, "activation_bytes": 1}
    (tmp_path / "profiles.json").write_text(json.dumps({"version": 1, "profiles": {key: stale}}))
    profile.cache_clear()
    try:
        counted = profile("resnet18", 32)
    finally:
        profile.cache_clear()
    assert counted.forward_flops > 10**7 and counted.activation_bytes > 10**4
    rewritten = json.loads((tmp_path / "profiles.json").read_text())
    assert rewritten["version"] != 1 and rewritten["profiles"][key]["forward_flops"] == counted.forward_flops


def test_plans_count_what_the_notebooks_run() -> None:
    sizes = DataSizes()
    train, val, test = sizes.ham_split()
    recipe = resolve_recipe("03_custom_cnn", "cpu")
    plan = plan_notebook(recipe, "03_custom_cnn", "cpu", sizes, every_pretrained)
    improved = next(run for run in plan.runs if run.label == "improved")
    epochs = recipe.arm("improved").train.epochs
    assert improved.train_images == epochs * train
    # validation every epoch; one plain and one TTA test, each with the balanced decision's validation pass
    assert improved.eval_images == epochs * val + test + TTA_VIEWS * test + 2 * val
    assert plan.trainings == 3
    grid = resolve_recipe("06_scaling_study", "cpu")
    rows = build_grid(grid.settings, can_pretrain=every_pretrained)
    assert notebook_plan("06_scaling_study", "cpu", sizes, every_pretrained).trainings == len(rows)


def test_pretrained_arms_use_their_fallback_where_weights_are_missing() -> None:
    recipe = resolve_recipe("04_resnet_transfer", "cpu")
    offline = plan_notebook(recipe, "04_resnet_transfer", "cpu", DataSizes(), lambda model: False)
    online = plan_notebook(recipe, "04_resnet_transfer", "cpu", DataSizes(), every_pretrained)
    assert {run.model for run in offline.runs if run.label == "finetune"} == {"efficientnet_lite0"}
    assert {run.model for run in online.runs if run.label == "finetune"} == {"resnet18"}


def test_dermamnist_runs_are_counted_only_with_its_split() -> None:
    recipe = resolve_recipe("04_resnet_transfer", "cpu")
    with_split = plan_notebook(recipe, "04_resnet_transfer", "cpu", DataSizes(), every_pretrained)
    without = plan_notebook(recipe, "04_resnet_transfer", "cpu", DataSizes(dermamnist=(0, 0, 0)), every_pretrained)
    assert with_split.trainings - without.trainings == 3  # ResNet-18 at 28 and 64 px, the fine-tuned arm at 64


def test_budget_json_keeps_every_gpu_notebook_within_30_minutes_and_15_gib_on_a_t4(capsys) -> None:
    assert budget_main(["--preset", "gpu", "--device", "t4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["preset"] == "gpu" and report["device"] == "t4"
    assert set(report["notebooks"]) == set(SERIES)
    for name, notebook in report["notebooks"].items():
        low, high = notebook["minutes"]
        assert 0 < low <= high <= 30, (name, notebook)
        assert notebook["peak_gib"] <= 15, (name, notebook)


def test_the_full_preset_does_not_fit_a_t4_and_says_so_in_minutes(capsys) -> None:
    assert budget_main(["--preset", "full", "--device", "t4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["notebooks"]["06_scaling_study"]["minutes"][0] > 120  # hours: the grid is for an A100/H100
    assert report["notebooks"]["06_scaling_study"]["trainings"] == 172


def test_faster_gpus_are_estimated_faster() -> None:
    t4, h100 = (estimate_series("gpu", device) for device in ("t4", "h100"))
    for name in SERIES[1:]:
        assert h100[name].minutes[1] < t4[name].minutes[1], name


def tiny_calibration() -> Calibration:
    work = {("improved_cnn", 16, 4, True, "adamw"), ("improved_cnn", 16, 8, False, "adamw")}
    return calibrate(work, "test CPU", device="cpu", steps=1, progress=False)


def test_the_calibration_times_the_loop_and_reads_back(tmp_path: Path) -> None:
    calibration = tiny_calibration()
    trained = calibration.entry("improved_cnn", 16, 4)
    assert trained is not None and trained.train_s_per_image > 0 and trained.eval_s_per_image > 0
    forward_only = calibration.entry("improved_cnn", 16, 8)
    assert forward_only.train_s_per_image is None and forward_only.eval_s_per_image > 0
    assert calibration.decode_s_per_image > 0 and calibration.bootstrap_s > 0
    path = write_calibration(calibration, tmp_path / "calibration.json")
    assert read_calibration(path) == calibration
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="calibration.json"):
        read_calibration(path)


def test_a_calibrated_machine_costs_images_times_measured_seconds() -> None:
    entry = Entry("improved_cnn", 64, 64, train_s_per_image=0.01, eval_s_per_image=0.002)
    slow = Calibration("test CPU", "cpu", "off", 2, "now", (entry,), decode_s_per_image=0.0, bootstrap_s=0.0)
    fast = Calibration(**{**slow.__dict__, "entries": (Entry("improved_cnn", 64, 64, 0.005, 0.001),)})
    plan = notebook_plan("02_preprocessing", "cpu", DataSizes(), every_pretrained)
    slow_minutes, fast_minutes = (estimate_notebook(plan, Target("t", calibration=c)).point_minutes for c in (slow, fast))
    runs = sum(run.train_images * 0.01 + run.eval_images * 0.002 for run in plan.runs)
    assert slow_minutes > fast_minutes
    assert slow_minutes * 60 == pytest.approx(runs + 12.0 + 2 * 1.0, rel=0.02)  # + notebook and run overheads


def test_a_gpu_calibration_file_replaces_the_public_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIN_LESION_MODELS_DIR", str(tmp_path))
    public = target_for("t4")
    assert public.gpu is not None and public.calibration is None
    measured = Calibration("GPU Tesla T4", "cuda", "fp16", 2, "now", (), 0.001, 0.5)
    write_calibration(measured, tmp_path / "calibration" / "gpu-t4.json")
    calibrated = target_for("t4")
    assert calibrated.gpu is None and calibrated.calibration == measured


def test_budget_calibrate_writes_a_calibration_on_the_cpu(tmp_path: Path, capsys) -> None:
    out = tmp_path / "cal.json"
    assert budget_main(["--calibrate", "--presets", "smoke", "--out", str(out)]) == 0
    calibration = read_calibration(out)
    smoke = [notebook_plan(nb, "smoke", DataSizes(), every_pretrained) for nb in SERIES]
    assert {(e.model, e.image_size) for e in calibration.entries} == {(w[0], w[1]) for w in work_of(smoke)}
    assert "entries" in capsys.readouterr().out


def test_over_budget_names_the_largest_preset_that_fits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calibration = tiny_calibration()
    path = write_calibration(calibration, tmp_path / "c.json")
    monkeypatch.setenv(CALIBRATION_ENV, str(path))
    sizes = DataSizes()
    target = target_for("this", hardware="test CPU")
    gpu = estimate_notebook(notebook_plan("03_custom_cnn", "gpu", sizes, every_pretrained), target)
    cpu = estimate_notebook(notebook_plan("03_custom_cnn", "cpu", sizes, every_pretrained), target)
    budget = (cpu.minutes[1] + gpu.minutes[1]) / 2  # cpu fits, gpu does not
    warning = over_budget("03_custom_cnn", "gpu", gpu, sizes, target, budget)
    assert warning.startswith("WARNING") and "preset='cpu'" in warning
    assert "no smaller preset" in over_budget("03_custom_cnn", "cpu", cpu, sizes, target, cpu.minutes[0] / 2)


def test_setup_prints_the_estimate_before_training(capsys, synthetic_dir) -> None:
    from helpers.course.config import setup

    setup("03_custom_cnn", preset="smoke", data_dir=str(synthetic_dir))
    out = capsys.readouterr().out
    assert "estimated time on this machine" in out
    for arm in ("reference", "reference_no_dropout", "improved"):
        assert f"  {arm}: " in out


def test_setup_warns_over_its_budget(capsys, synthetic_dir) -> None:
    from helpers.course.config import setup

    setup("03_custom_cnn", preset="smoke", data_dir=str(synthetic_dir), budget_minutes=1e-4)
    assert "WARNING: this notebook would take" in capsys.readouterr().out


def test_the_docs_table_is_current() -> None:
    text = (ROOT / "docs" / "estimates.md").read_text(encoding="utf-8")
    table = text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0].strip()
    assert table == estimates_table(), "regenerate it: python -m helpers.budget --write-docs"


def test_estimates_from_the_series_calibration_are_within_25_percent_of_the_committed_cpu_reports() -> None:
    """Each notebook that trains, in the committed cpu reports: the cost model's estimate from the calibration that
    series recorded (reports/calibration.json), for the data it ran on, against the measured wall time."""
    from helpers.course.cost.estimate import estimate_notebook
    from helpers.course.cost.series import SERIES_CALIBRATION

    reports = ROOT / "reports"
    path = reports / SERIES_CALIBRATION
    if not path.is_file():
        pytest.skip("the committed cpu reports predate the cost model: the next series run records its calibration")
    runs = json.loads((reports / "runs.json").read_text(encoding="utf-8"))
    calibration = read_calibration(path)
    target = Target("series machine", calibration=calibration)
    checked = []
    for notebook in SERIES[1:]:
        metrics = json.loads((reports / "metrics" / f"{notebook}.json").read_text(encoding="utf-8"))
        assert metrics["preset"] == "cpu" and metrics["data_source"] == "ham10000", notebook
        recorded = metrics["config"]["recipe"]["settings"]
        recipe = resolve_recipe(notebook, "cpu")
        assert recipe.settings == recorded, f"{notebook}: the reports were made with other settings; rerun them"
        pretrained = {"efficientnet_lite0"} | {m for m, state in metrics.get("pretrained_weights", {}).items()
                                                if state == "available"}
        plan = plan_notebook(recipe, notebook, "cpu", DataSizes(), lambda model: model in pretrained)
        estimate = estimate_notebook(plan, target).point_minutes * 60
        measured = runs[notebook]["wall_time_s"]
        checked.append((notebook, round(estimate), measured))
        assert 0.75 * measured <= estimate <= 1.25 * measured, checked


def test_the_index_shows_a_runs_estimate_beside_its_measured_time(tmp_path: Path) -> None:
    from helpers.reporting.site import _facts

    run = {"status": "ok", "wall_time_s": 600.0, "estimate_minutes": [8.5, 11.5], "parameters": {"preset": "cpu"}}
    facts = _facts(tmp_path, "03_custom_cnn", "ok", run, {})
    assert "wall time <b>10.0 min</b>" in facts and "estimated <b>8.5–11.5 min</b>" in facts
    assert "estimated" not in _facts(tmp_path, "03_custom_cnn", "ok", {"status": "ok", "wall_time_s": 60.0}, {})


def test_notebook_06_estimates_only_the_rows_still_to_run(synthetic_dir, tmp_path: Path, capsys) -> None:
    from helpers.course import scaling
    from helpers.course.config import setup
    from helpers.core.io import write_json

    config = setup("06_scaling_study", preset="smoke", data_dir=str(synthetic_dir), show=False)
    grid = scaling.build_grid(config.settings, can_pretrain=lambda model: False)
    data = scaling.GridData(config.data_root, config.data_source, max_images=config.max_images, progress=False)
    assert scaling.pending_rows(grid, data, tmp_path) == grid
    done = grid[0]
    identifier = scaling.row_id(done, scaling.data_fingerprint(data(done.image_size), data.name))
    record = {key: 0 for key in scaling.RECORD_FIELDS} | {"id": identifier, "summary": {
        "per_class_recall": {}, "ci95": {"balanced_accuracy": [0, 0]}}}
    write_json(record, tmp_path / f"{identifier}.json")
    pending = scaling.pending_rows(grid, data, tmp_path)
    assert pending == grid[1:] and scaling.pending_rows(grid, data, tmp_path, resume=False) == grid
    text = config.estimate(rows=pending)
    assert f"for the {len(grid) - 1} grid row(s) still to run" in text


def test_a_run_of_some_notebooks_keeps_the_series_calibration_of_the_others(tmp_path: Path) -> None:
    from helpers.course.cost.calibration import Calibration, Entry, write_calibration
    from helpers.reporting.series import kept_with

    def calibration(hardware: str, *entries: Entry) -> Calibration:
        return Calibration(hardware, "cpu", "off", 2, "2026-12-07T00:00:00+00:00", entries, 0.001, 1.0)

    old, remeasured = Entry("resnet18", 96, 64, 0.01, 0.002), Entry("improved_cnn", 64, 64, 0.001, 0.0002)
    path = write_calibration(calibration("cpu A", old, remeasured), tmp_path / "calibration.json")
    fresh = calibration("cpu A", Entry("improved_cnn", 64, 64, 0.002, 0.0003))
    assert kept_with(fresh, path).entries == (old, *fresh.entries)
    assert kept_with(calibration("cpu B", *fresh.entries), path).entries == fresh.entries  # another machine: only fresh
    assert kept_with(fresh, tmp_path / "absent.json") is fresh
