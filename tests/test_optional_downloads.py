"""`download --dataset melanoma10k|dermamnist-split`: a fake opendatasets and a split CSV served on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from helpers.data import catalog, dermamnist
from helpers.data.__main__ import DOWNLOAD_DATASETS, main
from helpers.data.catalog import download_dataset
from helpers.data.dermamnist import DERMAMNIST_COLUMNS, DERMAMNIST_COUNTS, download_dermamnist_split
from helpers.data.fetch import DownloadError
from helpers.data.melanoma10k import download_melanoma10k
from helpers.data.folder import load_image_folder
from helpers.data.ham10000 import read_metadata
from helpers.data.splits import dermamnist_split
from helpers.data.synthetic import HAM_CLASS_COUNTS
from helpers.core.errors import DataError

KAGGLE_URL = "https://www.kaggle.com/datasets/hasnainjaved/melanoma-skin-cancer-dataset-of-10000-images"


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 6), (seed * 50 % 256, 80, 120)).save(buffer, format="JPEG")
    return buffer.getvalue()


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- melanoma10k ----------------------------------------------------------------------------------------------

NESTED = {f"melanoma_cancer_dataset/{split}/{label}": n
          for split, sizes in (("train", (3, 2)), ("test", (2, 1))) for label, n in zip(("benign", "malignant"), sizes)}


@pytest.fixture
def kaggle_env(no_kaggle_credentials: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "student")
    monkeypatch.setenv("KAGGLE_KEY", "secret")


def fake_kaggle(monkeypatch: pytest.MonkeyPatch, folders: dict[str, int], calls: list[dict],
                fail: BaseException | None = None) -> None:
    """opendatasets.download as it behaves: data_dir/<slug>/ holds the unpacked archive (plus the zip itself)."""
    import opendatasets

    def download(url: str, data_dir: str = ".", **kwargs) -> None:
        calls.append({"url": url, "credentials": json.loads(Path("kaggle.json").read_text())})
        root = Path(data_dir) / url.rstrip("/").split("/")[-1]
        root.mkdir(parents=True)
        (Path(data_dir) / "melanoma-skin-cancer-dataset-of-10000-images.zip").write_bytes(b"PK")
        for number, (folder, n) in enumerate(folders.items()):
            (root / folder).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (root / folder / f"melanoma_{number * 100 + i}.jpg").write_bytes(jpeg(i))
            (root / folder / "Thumbs.db").write_bytes(b"junk")
            if fail is not None:
                raise fail

    monkeypatch.setattr(opendatasets, "download", download)


def test_melanoma10k_nested_kaggle_archive_becomes_the_project_layout(kaggle_env: None, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []
    fake_kaggle(monkeypatch, NESTED, calls)
    target = tmp_path / "data" / "melanoma10k"
    assert download_melanoma10k(target) == target.resolve()
    assert calls == [{"url": KAGGLE_URL, "credentials": {"username": "student", "key": "secret"}}]
    assert sorted(p.name for p in target.iterdir()) == [".kaggle.complete", "test", "train"]
    table = load_image_folder(target)
    counts = table.groupby(["folder_split", "label"], observed=True).size().to_dict()
    assert counts == {("train", "benign"): 3, ("train", "malignant"): 2, ("test", "benign"): 2, ("test", "malignant"): 1}
    assert not list(target.rglob("Thumbs.db")) and not list(target.rglob("*.zip"))
    assert sorted(p.name for p in target.parent.iterdir()) == ["melanoma10k"]
    download_melanoma10k(target)
    assert len(calls) == 1


@pytest.mark.parametrize("folders", [
    {"train/benign": 1, "train/malignant": 1, "test/benign": 1, "test/malignant": 1},
    {"Melanoma/Train/Benign": 1, "Melanoma/Train/Malignant": 1, "Melanoma/Test/Benign": 1, "Melanoma/Test/Malignant": 1},
    {"train_set/train/benign": 1, "train_set/train/malignant": 1, "test_set/test/benign": 1, "test_set/test/malignant": 1},
    {**{f"a/{k}": 1 for k in ("train/benign", "train/malignant", "test/benign", "test/malignant")},
     **{f"a/copy/b/{k}": 5 for k in ("train/benign", "train/malignant", "test/benign", "test/malignant")}},
])
def test_melanoma10k_other_nestings_are_normalised(kaggle_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   folders: dict[str, int]) -> None:
    fake_kaggle(monkeypatch, folders, [])
    target = download_melanoma10k(tmp_path / "melanoma10k")
    table = load_image_folder(target)
    assert len(table) == 4 and set(table["relpath"].str.rsplit("/", n=1).str[0]) == {
        "train/benign", "train/malignant", "test/benign", "test/malignant"}


def test_melanoma10k_missing_folder_is_named_and_nothing_is_kept(kaggle_env: None, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kaggle(monkeypatch, {k: v for k, v in NESTED.items() if not k.endswith("test/malignant")}, [])
    with pytest.raises(DownloadError, match=r"no test/ folder with benign/ and malignant/.*melanoma_cancer_dataset"):
        download_melanoma10k(tmp_path / "melanoma10k")
    assert not (tmp_path / "melanoma10k").exists() and not hidden_leftovers(tmp_path)


def test_melanoma10k_interrupted_download_keeps_nothing(kaggle_env: None, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fake_kaggle(monkeypatch, NESTED, [], fail=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        download_melanoma10k(tmp_path / "melanoma10k")
    assert not (tmp_path / "melanoma10k").exists() and not hidden_leftovers(tmp_path)


def test_melanoma10k_leftovers_of_a_killed_run_are_cleared(kaggle_env: None, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for leftover in (".melanoma10k.kaggle-staging/x", ".melanoma10k.build.tmp/train/benign"):
        (tmp_path / leftover).mkdir(parents=True)
    fake_kaggle(monkeypatch, NESTED, [])
    target = download_melanoma10k(tmp_path / "melanoma10k")
    assert len(load_image_folder(target)) == 8 and not hidden_leftovers(tmp_path)


def test_melanoma10k_refuses_to_replace_other_data(kaggle_env: None, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []
    fake_kaggle(monkeypatch, NESTED, calls)
    (tmp_path / "melanoma10k").mkdir()
    (tmp_path / "melanoma10k" / "mine.jpg").write_bytes(b"keep")
    with pytest.raises(DownloadError, match="melanoma10k is not empty.*refusing"):
        download_melanoma10k(tmp_path / "melanoma10k")
    assert not calls and (tmp_path / "melanoma10k" / "mine.jpg").read_bytes() == b"keep"


def test_melanoma10k_without_credentials_explains_the_token(kaggle_env: None, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    calls: list[dict] = []
    fake_kaggle(monkeypatch, NESTED, calls)
    with pytest.raises(DownloadError) as caught:
        download_melanoma10k(tmp_path / "melanoma10k")
    message = str(caught.value)
    assert "kaggle.json" in message and "KAGGLE_USERNAME" in message and "dataverse" not in message
    assert not calls and not (tmp_path / "melanoma10k").exists()


def test_melanoma10k_kaggle_json_in_home_is_used(kaggle_env: None, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    (tmp_path / "home" / ".kaggle").mkdir()
    (tmp_path / "home" / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "from-file"}')
    calls: list[dict] = []
    fake_kaggle(monkeypatch, NESTED, calls)
    download_melanoma10k(tmp_path / "melanoma10k")
    assert calls[0]["credentials"]["key"] == "from-file"


def test_cli_downloads_melanoma10k(kaggle_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    fake_kaggle(monkeypatch, NESTED, [])
    target = tmp_path / "m10k"
    assert main(["download", "--dataset", "melanoma10k", "--target", str(target)]) == 0
    assert str(target) in capsys.readouterr().out and len(load_image_folder(target)) == 8
    assert main(["download", "--dataset", "melanoma10k", "--source", "dataverse", "--target", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "melanoma10k comes from Kaggle only" in err


# --- the DermaMNIST split -------------------------------------------------------------------------------------

@dataclass
class Served:
    url: str
    files: dict[str, bytes]
    cut: dict[str, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)


class StaticFiles(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        served: Served = self.server.served
        served.log.append(self.path)
        body = served.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: served.cut.get(self.path, len(body))])
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server() -> Served:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StaticFiles)
    httpd.served = Served(f"http://127.0.0.1:{httpd.server_address[1]}", {})
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield httpd.served
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def subset(synthetic_dir: Path) -> pd.DataFrame:
    """100 of the synthetic images with a DermaMNIST-like split (train/val/test by row) and per-split indices."""
    meta = read_metadata(synthetic_dir / "HAM10000_metadata.csv").iloc[:100].copy()
    meta["split"] = ["train" if i % 10 < 7 else "val" if i % 10 == 7 else "test" for i in range(len(meta))]
    meta["index"] = meta.groupby("split").cumcount()
    return meta.sample(frac=1.0, random_state=3).reset_index(drop=True)  # the file need not be sorted


def counts_of(subset: pd.DataFrame) -> dict[str, dict[str, int]]:
    table = subset.assign(dx=subset["dx"].astype(str)).groupby(["split", "dx"]).size()
    return {split: {dx: int(n) for dx, n in table[split].items()} for split in ("train", "val", "test")}


def info_csv(table: pd.DataFrame, columns: dict[str, str] | None = None) -> bytes:
    columns = columns or {"split": "split", "index": "index", "image_id": "image_id"}
    return table[list(columns)].rename(columns=columns).to_csv(index=False).encode()


def serve(server: Served, body: bytes, name: str = "/dermamnist_split_info.csv") -> str:
    server.files[name] = body
    return server.url + name


def fetch(target: Path, synthetic_dir: Path, url: str, expected) -> Path:
    return download_dermamnist_split(target, ham10000_dir=synthetic_dir, url=url, expected=expected, progress=False)


def test_dermamnist_split_is_written_in_the_project_format(server: Served, synthetic_dir: Path, subset: pd.DataFrame,
                                                           tmp_path: Path) -> None:
    target = tmp_path / "data" / "dermamnist_split.csv"
    fetch(target, synthetic_dir, serve(server, info_csv(subset)), counts_of(subset))
    written = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert tuple(written.columns) == DERMAMNIST_COLUMNS and len(written) == len(subset)
    truth = subset.set_index("image_id")
    assert (written["lesion_id"] == written["image_id"].map(truth["lesion_id"])).all()
    assert (written["dx"] == written["image_id"].map(truth["dx"].astype(str))).all()
    assert (written["dermamnist_split"] == written["image_id"].map(truth["split"])).all()
    assert (written["dermamnist_index"].astype(int) == written["image_id"].map(truth["index"])).all()
    assert list(written["dermamnist_split"]) == sorted(written["dermamnist_split"], key=["train", "val", "test"].index)
    for _, rows in written.groupby("dermamnist_split"):
        assert list(rows["dermamnist_index"].astype(int)) == list(range(len(rows)))
    index = read_metadata(synthetic_dir / "HAM10000_metadata.csv").iloc[:100]
    assert (dermamnist_split(index, target) == index["image_id"].map(truth["split"])).all()
    assert sorted(p.name for p in target.parent.iterdir()) == ["dermamnist_split.csv"]


def test_a_count_mismatch_names_split_and_class_and_writes_nothing(server: Served, synthetic_dir: Path,
                                                                   subset: pd.DataFrame, tmp_path: Path) -> None:
    expected = counts_of(subset)
    dx = sorted(expected["val"])[0]
    expected["val"][dx] += 1
    target = tmp_path / "dermamnist_split.csv"
    target.write_text("the last good file\n")
    with pytest.raises(DownloadError, match=rf"split 'val', class '{dx}' has {expected['val'][dx] - 1} image\(s\), "
                                            rf"expected {expected['val'][dx]}") as caught:
        fetch(target, synthetic_dir, serve(server, info_csv(subset)), expected)
    assert "\n" not in str(caught.value)
    assert target.read_text() == "the last good file\n" and sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_class_missing_from_the_expected_table_is_a_mismatch(server: Served, synthetic_dir: Path,
                                                               subset: pd.DataFrame, tmp_path: Path) -> None:
    expected = counts_of(subset)
    dx = next(iter(expected["test"]))
    del expected["test"][dx]
    with pytest.raises(DownloadError, match=rf"split 'test', class '{dx}' has \d+ image\(s\), expected 0"):
        fetch(tmp_path / "s.csv", synthetic_dir, serve(server, info_csv(subset)), expected)


def test_the_default_check_is_the_published_table(server: Served, synthetic_dir: Path, subset: pd.DataFrame,
                                                  tmp_path: Path) -> None:
    train = subset[subset["split"] == "train"]
    first = sorted(train["dx"].astype(str).unique())[0]
    published = DERMAMNIST_COUNTS["train"][first]
    with pytest.raises(DownloadError, match=rf"split 'train', class '{first}' has \d+ image\(s\), expected {published}"):
        fetch(tmp_path / "s.csv", synthetic_dir, serve(server, info_csv(subset)), None)
    assert not (tmp_path / "s.csv").exists()


def test_published_table_matches_medmnist_totals_and_ham10000_classes() -> None:
    assert {split: sum(counts.values()) for split, counts in DERMAMNIST_COUNTS.items()} == {
        "train": 7007, "val": 1003, "test": 2005}
    assert {dx: sum(DERMAMNIST_COUNTS[s][dx] for s in DERMAMNIST_COUNTS) for dx in HAM_CLASS_COUNTS} == HAM_CLASS_COUNTS


def test_ids_missing_from_ham10000_are_refused(server: Served, synthetic_dir: Path, subset: pd.DataFrame,
                                               tmp_path: Path) -> None:
    extra = pd.DataFrame({"split": ["test"], "index": [999], "image_id": ["ISIC_9999999"]})
    url = serve(server, info_csv(pd.concat([subset, extra], ignore_index=True)))
    with pytest.raises(DownloadError, match=r"1 image id\(s\) of .* are not in .*HAM10000_metadata\.csv, e\.g\. ISIC_9999999"):
        fetch(tmp_path / "s.csv", synthetic_dir, url, counts_of(subset))
    assert not (tmp_path / "s.csv").exists()


def test_other_column_names_and_a_label_column_are_understood(server: Served, synthetic_dir: Path,
                                                              subset: pd.DataFrame, tmp_path: Path) -> None:
    from helpers.data.labels import DX_CLASSES

    table = subset.assign(label=subset["dx"].astype(str).map(DX_CLASSES.index),
                          split=subset["split"].replace({"val": "valid"}), image_id=subset["image_id"] + ".jpg")
    body = info_csv(table, {"image_id": "Image ID", "split": "Partition", "label": "Label"})
    target = fetch(tmp_path / "s.csv", synthetic_dir, serve(server, body), counts_of(subset))
    written = pd.read_csv(target, dtype=str, keep_default_na=False)
    assert set(written["dermamnist_split"]) == {"train", "val", "test"} and (written["dermamnist_index"] == "").all()
    wrong = table.assign(label=(table["label"] + 1) % len(DX_CLASSES))
    with pytest.raises(DownloadError, match=r"label\(s\) disagree with HAM10000's dx"):
        fetch(tmp_path / "t.csv", synthetic_dir, serve(server, info_csv(wrong, {"image_id": "image", "split": "split",
                                                                                "label": "label"})), counts_of(subset))


@pytest.mark.parametrize("body, message", [
    (b"image_id,set_name\nSYN_0000000,train\n", r"has no split column \(looked for split, .*its columns: image_id, set_name"),
    (b"name,split\nSYN_0000000,train\n", r"has no image_id column"),
    (b"image_id,split\nSYN_0000000,train\nSYN_0000000,test\n", r"1 duplicated image id"),
    (b"image_id,split\nSYN_0000000,holdout\n", r"unknown value\(s\) 'holdout' in column 'split'"),
    (b"image_id,split,index\nSYN_0000000,train,x1\n", r"column 'index' holds a non-integer 'x1' at row 2"),
    (b"", r"not a readable CSV"),
])
def test_bad_split_info_is_a_one_line_error(server: Served, synthetic_dir: Path, tmp_path: Path, body: bytes,
                                            message: str) -> None:
    with pytest.raises(DownloadError, match=message) as caught:
        fetch(tmp_path / "s.csv", synthetic_dir, serve(server, body), {})
    assert "\n" not in str(caught.value) and not (tmp_path / "s.csv").exists()


def test_an_interrupted_download_writes_nothing(server: Served, synthetic_dir: Path, subset: pd.DataFrame,
                                                tmp_path: Path) -> None:
    body = info_csv(subset)
    url = serve(server, body)
    server.cut["/dermamnist_split_info.csv"] = len(body) // 2
    with pytest.raises(DownloadError, match="broke off"):
        fetch(tmp_path / "s.csv", synthetic_dir, url, counts_of(subset))
    assert not list(tmp_path.iterdir())


def test_http_error_names_the_url(server: Served, synthetic_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"HTTP 404 .*127\.0\.0\.1.*/nothing\.csv"):
        fetch(tmp_path / "s.csv", synthetic_dir, server.url + "/nothing.csv", {})


def test_no_ham10000_folder_is_explained_before_any_download(server: Served, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAM10000_DIR", raising=False)
    monkeypatch.setattr(dermamnist, "data_home", lambda: tmp_path / "data")
    url = serve(server, b"image_id,split\n")
    with pytest.raises(DataError, match=r"--ham10000-dir.*\$HAM10000_DIR.*python -m helpers.data download"):
        download_dermamnist_split(tmp_path / "s.csv", url=url, progress=False)
    with pytest.raises(DataError, match=r"ham10000_dir \(--ham10000-dir\) points to .*nowhere"):
        download_dermamnist_split(tmp_path / "s.csv", ham10000_dir=tmp_path / "nowhere", url=url, progress=False)
    assert not server.log


def test_cli_fetches_the_split_from_the_env_url(server: Served, synthetic_dir: Path, subset: pd.DataFrame,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("DERMAMNIST_SPLIT_INFO_URL", serve(server, info_csv(subset), "/env.csv"))
    monkeypatch.setenv("HAM10000_DIR", str(synthetic_dir))
    target = tmp_path / "dermamnist_split.csv"
    assert main(["download", "--dataset", "dermamnist-split", "--target", str(target)]) == 1
    last = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert last.startswith("error: ") and "split 'train', class" in last and not target.exists()
    monkeypatch.setattr(dermamnist, "DERMAMNIST_COUNTS", counts_of(subset))
    assert main(["download", "--dataset", "dermamnist-split", "--target", str(target)]) == 0
    assert str(target) in capsys.readouterr().out
    assert len(pd.read_csv(target)) == len(subset) and server.log == ["/env.csv", "/env.csv"]


def test_download_arguments_are_checked(tmp_path: Path) -> None:
    assert DOWNLOAD_DATASETS == catalog.DATASETS
    with pytest.raises(ValueError, match="dataset must be one of ham10000, melanoma10k, dermamnist-split"):
        download_dataset("isic2019", tmp_path)
    with pytest.raises(ValueError, match="dermamnist-split' only"):
        download_dataset("ham10000", tmp_path, ham10000_dir=tmp_path)
    with pytest.raises(ValueError, match="no source choice"):
        download_dataset("dermamnist-split", tmp_path / "s.csv", source="kaggle")


# --- the real files, when configured --------------------------------------------------------------------------

@pytest.fixture
def real_split_csv() -> Path:
    path = os.environ.get("DERMAMNIST_SPLIT_CSV")
    if not path or not Path(path).is_file():
        pytest.skip("real DermaMNIST split not configured (set DERMAMNIST_SPLIT_CSV)")
    return Path(path)


def test_published_table_matches_the_real_split_file(real_split_csv: Path) -> None:
    table = pd.read_csv(real_split_csv, dtype=str)
    assert counts_of(table.rename(columns={"dermamnist_split": "split"})) == DERMAMNIST_COUNTS


def test_real_split_round_trip(real_split_csv: Path, real_dir: Path, server: Served, tmp_path: Path) -> None:
    """The real split, served in the upstream file's shape (split,index,image_id), comes back as the real file."""
    real = pd.read_csv(real_split_csv, dtype=str, keep_default_na=False)
    index = real["dermamnist_index"].where(real["dermamnist_index"] != "", real.groupby("dermamnist_split").cumcount().astype(str))
    body = real.assign(split=real["dermamnist_split"], index=index)[["split", "index", "image_id"]].to_csv(index=False)
    target = download_dermamnist_split(tmp_path / "s.csv", ham10000_dir=real_dir, url=serve(server, body.encode()),
                                       progress=False)
    written = pd.read_csv(target, dtype=str, keep_default_na=False)
    key = ["image_id", "lesion_id", "dx", "dermamnist_split"]
    assert written[key].sort_values("image_id").reset_index(drop=True).equals(
        real[key].sort_values("image_id").reset_index(drop=True))
