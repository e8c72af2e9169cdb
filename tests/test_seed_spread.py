"""benchmarks/seed_spread.py on the synthetic set: each run is written as it finishes, and a rerun resumes."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from helpers.data.synthetic import make_synthetic

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_spread.py"


@pytest.fixture(scope="module")
def seed_spread():
    """The benchmark script as a module."""
    spec = importlib.util.spec_from_file_location("seed_spread", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["seed_spread"] = module
    spec.loader.exec_module(module)
    return module


def test_runs_are_kept_as_they_finish_and_a_rerun_trains_only_what_is_missing(tmp_path: Path, seed_spread,
                                                                               monkeypatch) -> None:
    root = make_synthetic(tmp_path / "ham", n_images=120, image_size=(40, 30), progress=False)
    out = tmp_path / "spread.json"
    arm = "03_custom_cnn:improved"
    args = argparse.Namespace(preset="smoke", arm=[arm], seeds=[0], max_images=None, quiet=True)
    seed_spread.run_all(args, root, "synthetic", out)
    first = json.loads(out.read_text())["runs"]
    assert [(r["arm"], r["seed"], r["tta"]) for r in first] == [(arm, 0, True)]
    assert 0 <= first[0]["test_balanced_accuracy"] <= 1 and "test_macro_auc" in first[0]

    trained = []
    real = seed_spread.train_one
    monkeypatch.setattr(seed_spread, "train_one", lambda h, s, p, d, **kw: trained.append(s) or real(h, s, p, d, **kw))
    record = seed_spread.run_all(argparse.Namespace(**{**vars(args), "seeds": [0, 1]}), root, "synthetic", out)
    assert trained == [1]  # seed 0 was in the file
    assert [r["seed"] for r in json.loads(out.read_text())["runs"]] == [0, 1]
    table = seed_spread.spread(record)
    row = table.loc[(arm, "test_balanced_accuracy")]
    assert row["seeds"] == 2 and row["min"] <= row["mean"] <= row["max"]
    assert seed_spread.done_runs(out, "cpu", "synthetic") == []  # another preset's runs are not reused
