"""Tests of the synthetic HAM10000-layout demo data set."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import helpers.data.synthetic as synthetic
from helpers.data.labels import DX_CLASSES
from helpers.data.synthetic import make_synthetic, synthetic_metadata

REAL_HEADER = "lesion_id,image_id,dx,dx_type,age,sex,localization,dataset"
REAL_DX_TYPES = {"histo", "follow_up", "consensus", "confocal"}
REAL_SEXES = {"male", "female", "unknown"}
REAL_LOCALIZATIONS = {
    "abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
    "lower extremity", "neck", "scalp", "trunk", "unknown", "upper extremity",
}
N_SMALL = 140
SIZE_SMALL = (120, 90)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("synthetic") / "ham"
    return make_synthetic(out_dir, n_images=N_SMALL, image_size=SIZE_SMALL, seed=0, progress=False)


@pytest.fixture(scope="module")
def small_metadata(small_set: Path) -> pd.DataFrame:
    return pd.read_csv(small_set / "HAM10000_metadata.csv")


def _digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "images").iterdir())}


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_layout_and_header_match_the_real_data_set(small_set: Path) -> None:
    names = sorted(p.name for p in small_set.iterdir())
    assert names == ["HAM10000_metadata.csv", "images", "synthetic.json"]
    text = (small_set / "HAM10000_metadata.csv").read_text()
    assert text.splitlines()[0] == REAL_HEADER
    assert len(text.splitlines()) == N_SMALL + 1


def test_metadata_values_use_the_real_vocabulary(small_metadata: pd.DataFrame) -> None:
    md = small_metadata
    assert md.image_id.str.fullmatch(r"SYN_\d{7}").all()
    assert md.lesion_id.str.fullmatch(r"SYNL_\d{6}").all()
    assert md.image_id.is_unique
    assert set(md.dx) == set(DX_CLASSES)
    assert set(md.dx_type) <= REAL_DX_TYPES
    assert set(md.sex) <= REAL_SEXES
    assert set(md.localization) <= REAL_LOCALIZATIONS
    assert (md.dataset == "synthetic").all()
    ages = md.age.dropna()
    assert ages.between(0, 85).all() and (ages % 5 == 0).all()


def test_class_counts_are_imbalanced_like_ham() -> None:
    counts = synthetic_metadata(700, seed=0).dx.value_counts()
    assert set(counts.index) == set(DX_CLASSES)
    assert counts.sum() == 700
    assert counts["nv"] > 0.5 * 700
    assert counts["nv"] > min(counts["mel"], counts["bkl"]) > counts["bcc"] > counts["akiec"]
    assert counts["akiec"] > max(counts["vasc"], counts["df"])
    assert counts.min() >= 12


def test_real_size_reproduces_the_real_class_counts() -> None:
    counts = synthetic_metadata(10015, seed=0).dx.value_counts().to_dict()
    assert counts == synthetic.HAM_CLASS_COUNTS


def test_lesions_have_several_images_with_one_diagnosis_and_patient(small_metadata: pd.DataFrame) -> None:
    per_lesion = small_metadata.groupby("lesion_id")
    assert (per_lesion.size() > 1).sum() >= 5
    assert per_lesion.size().max() <= 6
    for column in ("dx", "dx_type", "age", "sex", "localization"):
        assert (per_lesion[column].nunique(dropna=False) == 1).all(), column


def test_every_class_has_at_least_three_lesions_even_at_the_minimum_size() -> None:
    md = synthetic_metadata(synthetic.MIN_IMAGES, seed=3)
    assert md.groupby("dx").lesion_id.nunique().min() >= 3


def test_demographics_depend_on_the_class() -> None:
    md = synthetic_metadata(2000, seed=0)
    age = md.groupby("dx").age.mean()
    assert age[["akiec", "bcc"]].min() > age["nv"] + 10
    head = md.localization.isin(["face", "scalp", "ear", "neck"])
    assert head[md.dx == "akiec"].mean() > 3 * head[md.dx == "nv"].mean()


def test_images_decode_as_rgb_of_the_requested_size(small_set: Path, small_metadata: pd.DataFrame) -> None:
    files = sorted(p.name for p in (small_set / "images").iterdir())
    assert files == sorted(f"{i}.jpg" for i in small_metadata.image_id)
    for name in files:
        with Image.open(small_set / "images" / name) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == SIZE_SMALL


def test_images_of_one_lesion_are_variants_not_copies(small_set: Path, small_metadata: pd.DataFrame) -> None:
    def pixels(image_id: str) -> np.ndarray:
        return np.asarray(Image.open(small_set / "images" / f"{image_id}.jpg"), dtype=np.float32)

    lesion = small_metadata.groupby("lesion_id").filter(lambda g: len(g) > 1).lesion_id.iloc[0]
    first, second = small_metadata.image_id[small_metadata.lesion_id == lesion].iloc[:2]
    assert not np.array_equal(pixels(first), pixels(second))


def test_same_arguments_give_identical_files(small_set: Path, tmp_path: Path) -> None:
    again = make_synthetic(tmp_path / "again", N_SMALL, SIZE_SMALL, seed=0, progress=False)
    for name in ("HAM10000_metadata.csv", "synthetic.json"):
        assert (again / name).read_bytes() == (small_set / name).read_bytes()
    assert _digests(again) == _digests(small_set)


def test_other_seed_gives_other_data() -> None:
    assert not synthetic_metadata(140, seed=0).equals(synthetic_metadata(140, seed=1))


def test_complete_set_is_reused_and_other_arguments_regenerate(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out_dir = tmp_path / "ham"
    assert make_synthetic(out_dir, n_images=70, image_size=(40, 30), progress=True) == out_dir
    assert "synthetic" in capsys.readouterr().err
    images = sorted((out_dir / "images").iterdir())[:5]
    files = [out_dir / "HAM10000_metadata.csv", out_dir / "synthetic.json", *images]
    mtimes = [p.stat().st_mtime_ns for p in files]

    make_synthetic(out_dir, n_images=70, image_size=(40, 30), progress=False)
    assert [p.stat().st_mtime_ns for p in files] == mtimes

    make_synthetic(out_dir, n_images=80, image_size=(40, 30), progress=False)
    assert len(pd.read_csv(out_dir / "HAM10000_metadata.csv")) == 80
    assert len(list((out_dir / "images").iterdir())) == 80
    assert json.loads((out_dir / "synthetic.json").read_text())["n_images"] == 80
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"n_images": 10}, "n_images"),
        ({"n_images": 69}, "n_images"),
        ({"n_images": 100.0}, "n_images"),
        ({"image_size": (0, 150)}, "image_size"),
        ({"image_size": (200,)}, "image_size"),
        ({"image_size": (200.0, 150)}, "image_size"),
        ({"image_size": "200x150"}, "image_size"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_parameter(
    tmp_path: Path, kwargs: dict, parameter: str
) -> None:
    with pytest.raises(ValueError, match=parameter):
        make_synthetic(tmp_path / "ham", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_that_is_not_a_synthetic_set(tmp_path: Path) -> None:
    (tmp_path / "ham").mkdir()
    (tmp_path / "ham" / "HAM10000_metadata.csv").write_text("real data\n")
    with pytest.raises(ValueError, match="out_dir"):
        make_synthetic(tmp_path / "ham", n_images=70, image_size=(40, 30), progress=False)
    assert (tmp_path / "ham" / "HAM10000_metadata.csv").read_text() == "real data\n"


def test_interrupted_run_leaves_no_partial_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = make_synthetic(tmp_path / "ham", n_images=70, image_size=(40, 30), progress=False)
    before = _digests(out_dir)
    calls = []

    def failing_render(*args: object) -> Image.Image:
        calls.append(args)
        if len(calls) > 20:
            raise KeyboardInterrupt
        return Image.new("RGB", (40, 30))

    monkeypatch.setattr(synthetic, "render_image", failing_render)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic(out_dir, n_images=90, image_size=(40, 30), progress=False)
    assert json.loads((out_dir / "synthetic.json").read_text())["n_images"] == 70
    assert _digests(out_dir) == before
    assert _leftovers(tmp_path) == []


def _colour_features(path: Path) -> np.ndarray:
    pixels = np.asarray(Image.open(path), dtype=np.float32) / 255
    height, width, _ = pixels.shape
    centre = pixels[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4].reshape(-1, 3)
    return np.concatenate([centre.mean(0), centre.std(0)])


def test_classes_are_learnable_from_colour_but_not_trivially(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    root = make_synthetic(tmp_path / "ham", n_images=700, image_size=(64, 48), seed=1, progress=False)
    md = pd.read_csv(root / "HAM10000_metadata.csv")
    x = np.stack([_colour_features(root / "images" / f"{i}.jpg") for i in md.image_id])
    y, groups = md.dx.to_numpy(), md.lesion_id.to_numpy()
    folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, class_weight="balanced"))
    score = balanced_accuracy_score(y, cross_val_predict(model, x, y, groups=groups, cv=folds))
    assert 0.5 < score < 0.95

    stump = DecisionTreeClassifier(max_depth=3, class_weight="balanced", random_state=0)
    single = [
        balanced_accuracy_score(y, cross_val_predict(stump, x[:, [k]], y, groups=groups, cv=folds))
        for k in range(x.shape[1])
    ]
    assert max(single) < 0.6
