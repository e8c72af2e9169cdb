"""`download --dataset isic2018-test` against small zips served on 127.0.0.1, and find_isic2018_test's three sources.

The zips are built here from a few tiny JPEGs and a one-hot ground truth in the official layout; no real data is copied.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from helpers.core.errors import DataError
from helpers.data import catalog, find_isic2018_test, isic2018, source
from helpers.data.__main__ import main
from helpers.data.catalog import download_dataset
from helpers.data.fetch import DownloadError
from helpers.data.isic2018 import GROUND_TRUTH_ARCHIVE, INPUT_ARCHIVE, download_isic2018_test, read_ground_truth
from helpers.data.labels import DX_CLASSES

LABELS = {"ISIC_0034524": "NV", "ISIC_0034525": "MEL", "ISIC_0034526": "BKL"}
COLUMNS = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ENV = "ISIC2018_TEST_DIR"


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), (seed * 60 % 256, 90, 140)).save(buffer, format="JPEG")
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def ground_truth(labels: dict[str, str]) -> bytes:
    """The official CSV's shape: image,MEL,NV,BCC,AKIEC,BKL,DF,VASC with 1.0 in the diagnosis' column."""
    rows = [",".join(["image", *COLUMNS])]
    rows += [",".join([image_id, *("1.0" if column == dx else "0.0" for column in COLUMNS)])
             for image_id, dx in labels.items()]
    return ("\n".join(rows) + "\n").encode()


def input_zip(image_ids: list[str]) -> bytes:
    folder = INPUT_ARCHIVE.removesuffix(".zip")
    images = {f"{folder}/{image_id}.jpg": jpeg(i) for i, image_id in enumerate(image_ids)}
    texts = {f"{folder}/ATTRIBUTION.txt": b"the ISIC archive\n", f"{folder}/LICENSE.txt": b"CC-BY-NC\n"}
    return zip_bytes({**images, **texts})


def ground_truth_zip(csv: bytes) -> bytes:
    folder = GROUND_TRUTH_ARCHIVE.removesuffix(".zip")
    return zip_bytes({f"{folder}/{folder}.csv": csv, f"{folder}/LICENSE.txt": b"CC-BY-NC\n"})


@dataclass
class Served:
    """A folder served over HTTP at root: the archives' base URL and folder, the paths asked for, files cut short."""

    root: Path
    url: str
    folder: Path
    log: list[str] = field(default_factory=list)
    cut: dict[str, int] = field(default_factory=dict)

    def publish(self, labels: dict[str, str] | None = None, images: list[str] | None = None,
                csv: bytes | None = None) -> None:
        """Write the two archives into the served folder (default: LABELS and their images)."""
        labels = LABELS if labels is None else labels
        (self.folder / INPUT_ARCHIVE).write_bytes(input_zip(list(labels) if images is None else images))
        (self.folder / GROUND_TRUTH_ARCHIVE).write_bytes(ground_truth_zip(ground_truth(labels) if csv is None else csv))


class FolderFiles(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        served: Served = self.server.served
        served.log.append(self.path)
        path = served.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: served.cut.get(self.path, len(body))])
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Served:
    root = tmp_path / "served"
    (root / "2018").mkdir(parents=True)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FolderFiles)
    httpd.served = Served(root, f"http://127.0.0.1:{httpd.server_address[1]}/2018", root / "2018")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield httpd.served
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def no_isic_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$ISIC2018_TEST_DIR unset and data/ an empty folder of tmp_path; returns that data/ folder."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv(isic2018.ISIC2018_URL_ENV, raising=False)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(source, "data_home", lambda: data)
    monkeypatch.setattr(catalog, "data_home", lambda: data)
    return data


def fetch(target: Path, server: Served, expected: int = len(LABELS)) -> Path:
    return download_isic2018_test(target, base_url=server.url, expected_images=expected, progress=False)


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def good_copy(folder: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "ISIC_0000001.jpg").write_bytes(jpeg(1))
    (folder / "labels.csv").write_text("image_id,dx\nISIC_0000001,nv\n")
    return folder


# --- the download ---------------------------------------------------------------------------------------------

def test_download_lays_out_images_labels_and_checksums(server: Served, tmp_path: Path) -> None:
    server.publish()
    target = tmp_path / "data" / "isic2018_test"
    assert fetch(target, server) == target.resolve()
    assert sorted(p.name for p in target.iterdir()) == ["checksums.json", "images", "labels.csv"]
    assert sorted(p.name for p in (target / "images").iterdir()) == [f"{i}.jpg" for i in sorted(LABELS)]
    for i, image_id in enumerate(LABELS):
        assert (target / "images" / f"{image_id}.jpg").read_bytes() == jpeg(i)
    assert (target / "labels.csv").read_text() == (
        "image_id,dx\nISIC_0034524,nv\nISIC_0034525,mel\nISIC_0034526,bkl\n")
    checksums = json.loads((target / "checksums.json").read_text())
    assert checksums == {name: {"url": f"{server.url}/{name}", "bytes": (server.folder / name).stat().st_size,
                                "sha256": hashlib.sha256((server.folder / name).read_bytes()).hexdigest()}
                         for name in (GROUND_TRUTH_ARCHIVE, INPUT_ARCHIVE)}
    assert sorted(p.name for p in target.parent.iterdir()) == ["isic2018_test"]
    assert server.log == [f"/2018/{GROUND_TRUTH_ARCHIVE}", f"/2018/{INPUT_ARCHIVE}"]
    assert fetch(target, server) == target.resolve() and len(server.log) == 2, "a rerun must download nothing"
    assert find_isic2018_test(target) == target.resolve()


def test_cli_downloads_into_data_from_the_env_url_and_find_sees_it(server: Served, no_isic_env: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    server.publish()
    monkeypatch.setenv(isic2018.ISIC2018_URL_ENV, server.url + "/")
    monkeypatch.setattr(isic2018, "ISIC2018_TEST_IMAGES", len(LABELS))
    assert find_isic2018_test() is None
    assert main(["download", "--dataset", "isic2018-test"]) == 0
    target = no_isic_env / "isic2018_test"
    assert str(target.resolve()) in capsys.readouterr().out
    assert find_isic2018_test() == target
    labels = pd.read_csv(target / "labels.csv", dtype=str)
    assert list(labels.columns) == ["image_id", "dx"] and set(labels["dx"]) <= set(DX_CLASSES)


def test_the_official_count_is_checked_by_default(server: Served, tmp_path: Path) -> None:
    server.publish()
    with pytest.raises(DownloadError, match=rf"{INPUT_ARCHIVE} holds 3 image\(s\) ISIC_xxxxxxx.jpg, expected 1,512"):
        download_isic2018_test(tmp_path / "isic2018_test", base_url=server.url, progress=False)
    assert not list(tmp_path.glob("*isic2018_test*"))


def corrupt_member(body: bytes, member: bytes) -> bytes:
    """The zip with one byte of a stored member flipped: the archive opens, its CRC check fails."""
    at = body.index(member) + len(member) // 2
    return body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:]


FAILURES = {
    "not a zip": (lambda s: (s.folder / INPUT_ARCHIVE).write_bytes(b"<Error><Code>AccessDenied</Code></Error>"),
                  rf"{INPUT_ARCHIVE} downloaded from http://127.0.0.1:\d+/2018/{INPUT_ARCHIVE} is not a readable zip "
                  r"\(File is not a zip file\); the bad file was deleted, run again to retry"),
    "bad CRC": (lambda s: (s.folder / INPUT_ARCHIVE).write_bytes(corrupt_member(input_zip(list(LABELS)), jpeg(1))),
                rf"{INPUT_ARCHIVE} .* is not a readable zip \(Bad CRC-32 for file '.*/ISIC_0034525.jpg'\)"),
    "an image too few": (lambda s: s.publish(images=list(LABELS)[:2]),
                         rf"{INPUT_ARCHIVE} holds 2 image\(s\) ISIC_xxxxxxx.jpg, expected 3"),
    "a row too few": (lambda s: s.publish(csv=ground_truth(dict(list(LABELS.items())[:2]))),
                      rf"{GROUND_TRUTH_ARCHIVE} has 2 ground-truth row\(s\), expected 3"),
    "ids that differ": (lambda s: s.publish(images=[*list(LABELS)[:2], "ISIC_0099999"]),
                        r"disagree: 1 id\(s\) without an image, 1 image\(s\) without a row \(e.g. ISIC_0034526\)"),
    "not one-hot": (lambda s: s.publish(csv=ground_truth(LABELS).replace(b"0034525,1.0,0.0", b"0034525,1.0,1.0")),
                    r"1 row\(s\) that are not one-hot over MEL, NV, BCC, AKIEC, BKL, DF, VASC, e.g. ISIC_0034525"),
    "no ground truth CSV": (lambda s: (s.folder / GROUND_TRUTH_ARCHIVE).write_bytes(zip_bytes({"README.txt": b"x"})),
                            rf"{GROUND_TRUTH_ARCHIVE} should hold one ground-truth CSV; it holds 0 \(none\)"),
    "404": (lambda s: (s.folder / GROUND_TRUTH_ARCHIVE).unlink(),
            rf"HTTP 404 .* for http://127\.0\.0\.1:\d+/2018/{GROUND_TRUTH_ARCHIVE}"),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failed_download_is_one_line_and_leaves_nothing(server: Served, tmp_path: Path, failure: str) -> None:
    server.publish()
    spoil, message = FAILURES[failure]
    spoil(server)
    target = tmp_path / "data" / "isic2018_test"
    with pytest.raises(DataError, match=message) as caught:
        fetch(target, server)
    assert "\n" not in str(caught.value)
    assert not target.exists() and list(target.parent.iterdir()) == []
    server.publish()
    assert fetch(target, server) == target.resolve(), "the next run must start clean and succeed"


def test_cli_failure_is_one_error_line(server: Served, no_isic_env: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(isic2018.ISIC2018_URL_ENV, server.url)
    assert main(["download", "--dataset", "isic2018-test", "--target", str(no_isic_env / "t")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: HTTP 404") and GROUND_TRUTH_ARCHIVE in err
    assert list(no_isic_env.iterdir()) == []


def test_a_good_copy_is_kept_and_nothing_is_downloaded(server: Served, tmp_path: Path) -> None:
    FAILURES["not a zip"][0](server)
    target = good_copy(tmp_path / "isic2018_test")
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert fetch(target, server) == target.resolve()
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before and not server.log


def test_other_data_in_the_target_is_never_replaced(server: Served, tmp_path: Path) -> None:
    server.publish()
    target = tmp_path / "isic2018_test"
    target.mkdir()
    (target / "mine.jpg").write_bytes(b"keep")
    with pytest.raises(DownloadError, match=r"isic2018_test is not empty and holds no images/ and labels.csv; refus"):
        fetch(target, server)
    assert [p.name for p in target.iterdir()] == ["mine.jpg"] and not server.log


def test_an_empty_target_folder_is_filled(server: Served, tmp_path: Path) -> None:
    server.publish()
    (tmp_path / "isic2018_test").mkdir()
    assert (fetch(tmp_path / "isic2018_test", server) / "labels.csv").is_file()


def test_an_interrupted_download_keeps_only_its_part_file_and_resumes(server: Served, tmp_path: Path) -> None:
    server.publish()
    server.cut[f"/2018/{INPUT_ARCHIVE}"] = 100
    target = tmp_path / "isic2018_test"
    with pytest.raises(DownloadError, match=rf"download of {INPUT_ARCHIVE} from .* broke off after 100"):
        fetch(target, server)
    assert not target.exists() and hidden_leftovers(tmp_path) == [".isic2018_test.download"]
    assert [p.name for p in (tmp_path / ".isic2018_test.download").iterdir()] == [f"{INPUT_ARCHIVE}.part"]
    server.cut.clear()
    assert fetch(target, server) == target.resolve() and hidden_leftovers(tmp_path) == []
    assert len(list((target / "images").iterdir())) == len(LABELS)


@pytest.mark.parametrize("body, message", [
    (b"", r"is not a readable CSV"),
    (b"image,MEL,NV\nISIC_0000001,1.0,0.0\n", r"has no column BCC, AKIEC, BKL, DF, VASC; its columns: image, MEL, NV"),
    (ground_truth(LABELS).replace(b"0.0", b"x", 1), r"1 row\(s\) that are not one-hot"),
    (ground_truth(LABELS).replace(b"1.0", b"0.0"), r"3 row\(s\) that are not one-hot"),
    (ground_truth(LABELS) + ground_truth(LABELS).split(b"\n", 2)[1] + b"\n", r"lists 1 image id\(s\) more than once"),
    (ground_truth({"image_0001": "NV"}), r"1 image id\(s\) not like ISIC_0000000, e.g. 'image_0001'"),
])
def test_bad_ground_truth_is_named(tmp_path: Path, body: bytes, message: str) -> None:
    path = tmp_path / "ISIC2018_Task3_Test_GroundTruth.csv"
    path.write_bytes(body)
    with pytest.raises(DownloadError, match=message) as caught:
        read_ground_truth(path)
    assert "\n" not in str(caught.value) and path.name in str(caught.value)


def test_download_arguments_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="the ISIC 2018 test set comes from the ISIC archive only"):
        download_dataset("isic2018-test", tmp_path / "t", source="kaggle")
    with pytest.raises(ValueError, match=r"split_info_url \(--split-info-url\) apply to dataset 'dermamnist-split'"):
        download_dataset("isic2018-test", tmp_path / "t", split_info_url="http://127.0.0.1/x.csv")
    monkeypatch.setenv(isic2018.ISIC2018_URL_ENV, "ftp://example.org/2018")
    with pytest.raises(ValueError, match=r"\$ISIC2018_TEST_BASE_URL\) must be an http\(s\) URL"):
        download_dataset("isic2018-test", tmp_path / "t")
    assert not (tmp_path / "t").exists()


# --- finding it -----------------------------------------------------------------------------------------------

def test_find_takes_the_parameter_then_the_variable_then_data(no_isic_env: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    given, configured, default = (good_copy(tmp_path / name) for name in ("given", "configured", "data/isic2018_test"))
    assert find_isic2018_test() == default
    monkeypatch.setenv(ENV, str(configured))
    assert find_isic2018_test() == configured.resolve()
    assert find_isic2018_test(given) == find_isic2018_test(str(given)) == given.resolve()


def test_find_is_none_when_nothing_is_there(no_isic_env: Path) -> None:
    assert find_isic2018_test() is None
    (no_isic_env / "isic2018_test").mkdir()
    assert find_isic2018_test() is None, "an empty default folder is as good as none"


@pytest.mark.parametrize("lacks", ["labels.csv", "images/"])
@pytest.mark.parametrize("origin", ["isic2018_test_dir parameter", "$ISIC2018_TEST_DIR"])
def test_find_names_what_a_folder_lacks_and_where_it_came_from(no_isic_env: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, lacks: str,
                                                               origin: str) -> None:
    folder = good_copy(tmp_path / "copy")
    if lacks == "labels.csv":
        (folder / "labels.csv").unlink()
    else:
        shutil.rmtree(folder / "images")
    if origin == "$ISIC2018_TEST_DIR":
        monkeypatch.setenv(ENV, str(folder))
    expected = (rf"copy \(from {re.escape(origin)}\) holds no {lacks}, so it is no ISIC 2018 test folder; "
                r"`python -m helpers.data download --dataset isic2018-test` fetches one")
    with pytest.raises(DataError, match=expected) as caught:
        find_isic2018_test(folder if origin.endswith("parameter") else None)
    assert "\n" not in str(caught.value)


def test_find_refuses_a_path_that_is_not_there(no_isic_env: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match=r"isic2018_test_dir points to .*nowhere, which is not an existing folder"):
        find_isic2018_test(tmp_path / "nowhere")
    monkeypatch.setenv(ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match=r"\$ISIC2018_TEST_DIR points to .*elsewhere, which is not an existing folder"):
        find_isic2018_test()


def test_find_refuses_a_default_folder_holding_something_else(no_isic_env: Path) -> None:
    (no_isic_env / "isic2018_test").mkdir()
    (no_isic_env / "isic2018_test" / "notes.txt").write_text("half a copy")
    with pytest.raises(DataError, match=r"isic2018_test \(from data/isic2018_test/\) holds no images/ and no labels"):
        find_isic2018_test()


# --- the real copy, when configured ---------------------------------------------------------------------------

def test_the_real_copy_has_1510_labelled_images() -> None:
    if not os.environ.get(ENV):
        pytest.skip(f"the real ISIC 2018 test set is not configured (set {ENV})")
    folder = find_isic2018_test()
    images = sorted(p.stem for p in (folder / "images").glob("*.jpg"))
    labels = pd.read_csv(folder / "labels.csv", dtype=str, keep_default_na=False)
    assert len(images) == 1510 and len(labels) == 1510
    assert list(labels.columns) == ["image_id", "dx"] and sorted(labels["image_id"]) == images
    assert set(labels["dx"]) == set(DX_CLASSES)
