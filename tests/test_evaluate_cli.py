"""python -m helpers.evaluate: a checkpoint scored on labelled images it never saw, every input accounted for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.data import load_ham10000
from helpers.data.labels import BINARY_CLASSES, DX_CLASSES
from helpers.evaluate import main
from helpers.evaluation.external import read_labels
from helpers.core.errors import DataError
from helpers.models import build_classifier, save_checkpoint


@pytest.fixture(scope="module")
def external(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A labelled folder (the synthetic images) and a 7-class and a binary checkpoint (untrained: scores are chance)."""
    root = tmp_path_factory.mktemp("external")
    images = root / "images"
    index = load_ham10000(synthetic_dir, progress=False).head(40)
    images.mkdir()
    for path in index["path"]:
        shutil.copy(path, images / Path(path).name)
    labels = root / "labels.csv"
    index[["image_id", "lesion_id", "dx"]].to_csv(labels, index=False)
    torch.manual_seed(0)
    seven = build_classifier("improved_cnn", list(DX_CLASSES), 16)
    priors = (np.arange(1, 8) / 28).tolist()
    save_checkpoint(seven, root / "seven.pt", extra={"tta": True, "temperature": 1.5,
                                                     "decision": {"tau": 1.0, "priors": priors}})
    save_checkpoint(build_classifier("improved_cnn", list(BINARY_CLASSES), 16), root / "binary.pt",
                    extra={"threshold": 0.3})
    return {"root": root, "images": images, "labels": labels, "seven": root / "seven.pt", "binary": root / "binary.pt",
            "index": index}


def run_cli(external: dict[str, Path], checkpoint: str, labels: Path, out: Path, *extra: str) -> int:
    return main(["--checkpoint", str(external[checkpoint]), "--images", str(external["images"]), "--labels", str(labels),
                 "--out", str(out), "--n-boot", "50", *extra])


def test_a_clean_folder_is_scored_with_intervals_and_the_checkpoints_own_rules(external, tmp_path, capsys) -> None:
    out = tmp_path / "metrics.json"
    assert run_cli(external, "seven", external["labels"], out) == 0
    result = json.loads(out.read_text())
    assert result["n_images"] == 40 and result["tta"] is True and result["temperature"] == 1.5
    assert result["n_lesions"] == external["index"]["lesion_id"].nunique()
    metrics = result["metrics"]
    assert set(metrics["per_class_recall"]) == set(DX_CLASSES) and metrics["ci95"]["balanced_accuracy"][0] is not None
    assert 0 <= result["malignant_vs_benign"]["auc"] <= 1
    assert result["balanced_decision"]["tau"] == 1.0
    assert all(found["count"] == 0 for found in result["excluded"].values())
    printed = capsys.readouterr().out
    assert "balanced accuracy" in printed and "malignant vs benign AUC" in printed and "95% CI" in printed


def test_every_bad_input_is_reported_counted_and_the_rest_scored(external, tmp_path, capsys) -> None:
    labels = pd.read_csv(external["labels"])
    labels.loc[0, "dx"] = "melanoma"  # an unknown code
    labels = pd.concat([labels.drop(index=1),  # image 1 has no label
                        pd.DataFrame([{"image_id": "ISIC_9999999", "lesion_id": "L", "dx": "nv"}])])  # label, no image
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    broken = external["images"] / "ISIC_broken.jpg"
    broken.write_bytes(b"not a jpeg")
    try:
        labels = pd.concat([labels, pd.DataFrame([{"image_id": "ISIC_broken", "lesion_id": "B", "dx": "nv"}])])
        labels.to_csv(path, index=False)
        out = tmp_path / "metrics.json"
        assert run_cli(external, "seven", path, out) == 3
    finally:
        broken.unlink()
    result = json.loads(out.read_text())
    excluded = {kind: found["count"] for kind, found in result["excluded"].items()}
    assert excluded == {"images without labels": 1, "labels without images": 1, "unknown dx codes": 1,
                        "not images": 0, "dx the checkpoint does not predict": 0, "unreadable files": 1}
    assert result["n_images"] == 40 - 2
    err = capsys.readouterr().err
    assert "ISIC_9999999" in err and "melanoma" in err and "ISIC_broken" in err


def test_a_binary_checkpoint_is_scored_on_dx_mapped_to_malignant(external, tmp_path) -> None:
    out = tmp_path / "binary.json"
    assert run_cli(external, "binary", external["labels"], out, "--no-tta") == 0
    result = json.loads(out.read_text())
    malignant = external["index"]["dx"].isin(["mel", "bcc", "akiec"]).sum()
    assert result["malignant_vs_benign"]["n_malignant"] == malignant and result["threshold"] == 0.3
    assert set(result["metrics"]) >= {"auc", "sensitivity", "specificity"} and "balanced_decision" not in result


def test_isic_one_hot_ground_truth_is_read(tmp_path) -> None:
    csv = tmp_path / "gt.csv"
    csv.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_1,0,1,0,0,0,0,0\nISIC_2,1.0,0,0,0,0,0,0\n")
    table = read_labels(csv)
    assert table["dx"].tolist() == ["nv", "mel"] and table["group"].tolist() == ["ISIC_1", "ISIC_2"]


@pytest.mark.parametrize(("text", "message"), [
    ("name,dx\nISIC_1,nv\n", "no image column"),
    ("image_id,diagnosis\nISIC_1,nv\n", "no dx column"),
    ("image_id,dx\n", "header but no rows"),
    ("image_id,dx\nISIC_1,nv\nISIC_1.jpg,mel\n", "labelled more than once"),
])
def test_bad_label_files_name_the_problem(tmp_path, text: str, message: str) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text(text)
    with pytest.raises(DataError, match=message):
        read_labels(csv)


def test_nothing_scorable_keeps_the_earlier_output(external, tmp_path, capsys) -> None:
    out = tmp_path / "metrics.json"
    out.write_text("earlier")
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,dx\nISIC_0000000,nv\n")
    assert run_cli(external, "seven", labels, out) == 1
    assert out.read_text() == "earlier"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no image could be scored") and "kept as it was" in err[0]


def test_reported_metrics_match_scikit_learn_on_the_written_predictions(external, tmp_path) -> None:
    """Every metric helpers.evaluate reports, recomputed by scikit-learn from the probabilities helpers.predict writes
    for the same checkpoint and images, with the checkpoint's temperature and balanced decision applied by hand."""
    from scipy.special import softmax
    from sklearn import metrics as skm

    from helpers.data.images import read_image
    from helpers.predict import main as predict_main
    from helpers.training.inference import predict_logits

    # An untrained model predicts one class everywhere; amplifying its head and centring the logits on these images
    # spreads its predictions over the seven classes, so that no metric below is 0 or 1 by construction.
    torch.manual_seed(1)
    model = build_classifier("improved_cnn", list(DX_CLASSES), 16)
    files = sorted(external["images"].glob("*.jpg"))
    pixels = torch.from_numpy(np.stack([read_image(path, 16, model.resize_policy)[0] for path in files]))
    head = model.net.classifier[-1]
    with torch.no_grad():
        head.weight.mul_(500)
        head.bias.sub_(predict_logits(model, pixels, tta=True).mean(0))
    temperature, tau, priors = 1.5, 1.0, np.arange(1, 8) / 28
    checkpoint = save_checkpoint(model, tmp_path / "spread.pt", extra={
        "tta": True, "temperature": temperature, "decision": {"tau": tau, "priors": priors.tolist()}})
    predictions = tmp_path / "predictions.csv"
    assert predict_main(["--checkpoint", str(checkpoint), "--images", str(external["images"]), "--out",
                         str(predictions), "--tta"]) == 0
    table = pd.read_csv(predictions)
    table["image_id"] = table["image"].map(lambda name: Path(name).stem)
    index = external["index"].reset_index(drop=True)
    predicted = table.set_index("image_id").loc[index["image_id"], "predicted"].to_numpy()
    # labels: every second image labelled as predicted, the others cycling through the classes (all seven present)
    labels = index[["image_id", "lesion_id"]].assign(
        dx=[predicted[i] if i % 2 else DX_CLASSES[(3 * i) % 7] for i in range(len(index))])
    labels.to_csv(tmp_path / "labels.csv", index=False)
    out = tmp_path / "metrics.json"
    assert main(["--checkpoint", str(checkpoint), "--images", str(external["images"]), "--labels",
                 str(tmp_path / "labels.csv"), "--out", str(out), "--n-boot", "20"]) == 0
    result = json.loads(out.read_text())

    rows = table.set_index("image_id").loc[labels["image_id"]]
    probs = softmax(np.log(rows[[f"p_{c}" for c in DX_CLASSES]].to_numpy()) / temperature, axis=1)
    y = labels["dx"].map({c: i for i, c in enumerate(DX_CLASSES)}).to_numpy()
    y_pred = probs.argmax(1)
    expected = {"accuracy": skm.accuracy_score(y, y_pred), "balanced_accuracy": skm.balanced_accuracy_score(y, y_pred),
                "macro_f1": skm.f1_score(y, y_pred, average="macro"),
                "macro_auc": skm.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=range(7))}
    recall = dict(zip(DX_CLASSES, skm.recall_score(y, y_pred, labels=range(7), average=None)))
    metrics = result["metrics"]
    assert 0.3 < expected["accuracy"] < 0.9 and 0.5 < expected["macro_auc"] < 0.95 and len(set(recall.values())) >= 5
    assert {key: metrics[key] for key in expected} == pytest.approx(expected, abs=1e-9)
    assert metrics["per_class_recall"] == pytest.approx(recall, abs=1e-9)
    malignant = labels["dx"].isin(["mel", "bcc", "akiec"]).to_numpy()
    malignant_p = probs[:, [DX_CLASSES.index(c) for c in ("mel", "bcc", "akiec")]].sum(1)
    assert result["malignant_vs_benign"]["auc"] == pytest.approx(skm.roc_auc_score(malignant, malignant_p), abs=1e-9)
    decided = (np.log(probs) - tau * np.log(priors)).argmax(1)
    decision = result["balanced_decision"]
    assert decision["accuracy"] == pytest.approx(skm.accuracy_score(y, decided), abs=1e-9)
    assert decision["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, decided), abs=1e-9)
