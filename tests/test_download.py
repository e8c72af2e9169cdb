"""The HAM10000 download (helpers.data.dataverse, .fetch, .archives, .kaggle, .catalog) against a fake Dataverse on 127.0.0.1 and a fake opendatasets: no real network."""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import tarfile
import threading
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from helpers.data import fetch
from helpers.data.archives import extract_archive
from helpers.data.catalog import download_ham10000
from helpers.data.dataverse import download_dataverse
from helpers.data.fetch import DownloadError
from helpers.data.kaggle import download_kaggle

DOI = "doi:10.7910/DVN/DBW86T"
METADATA_CSV = (
    b"lesion_id,image_id,dx,dx_type,age,sex,localization\n"
    b"HAM_0000001,ISIC_0000001,nv,follow_up,45.0,male,back\n"
    b"HAM_0000001,ISIC_0000002,nv,follow_up,45.0,male,back\n"
    b"HAM_0000002,ISIC_0000003,mel,histo,60.0,female,face\n"
)
METADATA_TAB = b'lesion_id\timage_id\tdx\tdx_type\tage\tsex\tlocalization\n"HAM_0000001"\t"ISIC_0000001"\t"nv"\n'


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (seed * 40 % 256, 90, 160)).save(buffer, format="JPEG")
    return buffer.getvalue()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 6), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@dataclass
class FakeFile:
    """A file of the fake dataset; original is set for an ingested tabular file (content is then the .tab)."""

    file_id: int
    filename: str
    content: bytes
    original: bytes | None = None
    original_name: str | None = None
    checksum_type: str | None = "MD5"
    served: bytes | None = None

    def canonical(self) -> bytes:
        return self.original if self.original is not None else self.content

    def listing(self) -> dict:
        data_file = {"id": self.file_id, "persistentId": "", "filename": self.filename,
                     "contentType": "application/zip", "filesize": len(self.content), "description": ""}
        if self.original is not None:
            data_file.update(contentType="text/tab-separated-values", originalFileFormat="text/csv",
                             originalFormatLabel="Comma Separated Values", originalFileSize=len(self.original),
                             originalFileName=self.original_name)
        if self.checksum_type:
            digest = hashlib.new(self.checksum_type.replace("-", "").lower(), self.canonical()).hexdigest()
            data_file["checksum"] = {"type": self.checksum_type, "value": digest}
        return {"label": self.filename, "restricted": False, "version": 1, "dataFile": data_file}


@dataclass
class ServerState:
    files: list[FakeFile]
    honour_range: bool = True
    cut_once: dict[str, int] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_id(self, file_id: str) -> FakeFile | None:
        return next((f for f in self.files if str(f.file_id) == file_id), None)

    def requests_for(self, prefix: str) -> list[tuple[str, str | None]]:
        return [entry for entry in self.log if entry[0].startswith(prefix)]


class FakeDataverse(BaseHTTPRequestHandler):
    """The two endpoints used: dataset JSON by persistentId, and file access (zips 303-redirect like S3)."""

    def do_GET(self) -> None:  # noqa: N802
        state: ServerState = self.server.state
        with state.lock:
            state.log.append((self.path, self.headers.get("Range")))
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/api/datasets/:persistentId/" and query.get("persistentId") == [DOI]:
            body = {"status": "OK", "data": {"id": 1, "identifier": "DVN/DBW86T",
                                             "latestVersion": {"versionNumber": 4,
                                                               "files": [f.listing() for f in state.files]}}}
            return self.send_body(json.dumps(body).encode(), "application/json")
        match = re.fullmatch(r"/api/access/datafile/(\d+)", url.path)
        if match and state.by_id(match.group(1)):
            fake = state.by_id(match.group(1))
            if fake.original is not None:
                wants_original = query.get("format") == ["original"]
                return self.send_ranged(fake.served or (fake.original if wants_original else fake.content))
            self.send_response(303)
            self.send_header("Location", f"/storage/{fake.file_id}")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        match = re.fullmatch(r"/storage/(\d+)", url.path)
        if match and state.by_id(match.group(1)):
            fake = state.by_id(match.group(1))
            return self.send_ranged(fake.served or fake.content)
        self.send_body(b'{"status":"ERROR","message":"not found"}', "application/json", 404)

    def send_ranged(self, data: bytes) -> None:
        cut = self.server.state.cut_once.pop(self.path, None)
        if cut is not None:
            return self.send_cut(data, cut)
        requested = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if not (requested and self.server.state.honour_range):
            return self.send_body(data, "application/octet-stream")
        start = int(requested.group(1))
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def send_cut(self, data: bytes, cut: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:cut])
        self.close_connection = True

    def send_body(self, data: bytes, content_type: str, code: int = 200) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@dataclass
class Served:
    url: str
    state: ServerState
    part_1: FakeFile
    part_2: FakeFile
    metadata: FakeFile


@pytest.fixture
def dataverse() -> Served:
    part_1 = FakeFile(101, "HAM10000_images_part_1.zip",
                      zip_bytes({"ISIC_0000001.jpg": jpeg(1), "ISIC_0000002.jpg": jpeg(2)}))
    part_2 = FakeFile(102, "HAM10000_images_part_2.zip", zip_bytes({"ISIC_0000003.jpg": jpeg(3)}))
    metadata = FakeFile(103, "HAM10000_metadata.tab", METADATA_TAB, original=METADATA_CSV,
                        original_name="HAM10000_metadata.csv")
    segmentations = FakeFile(104, "HAM10000_segmentations_lesion_tschandl.zip", zip_bytes({
        "HAM10000_segmentations_lesion_tschandl/": b"",
        "HAM10000_segmentations_lesion_tschandl/ISIC_0000001_segmentation.png": png(),
    }), checksum_type="SHA-256")
    test_images = FakeFile(105, "ISIC2018_Task3_Test_Images.zip", zip_bytes({"ISIC_0034524.jpg": jpeg(4)}))
    state = ServerState([part_1, part_2, metadata, segmentations, test_images])
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDataverse)
    server.state = state
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_address[1]}", state, part_1, part_2, metadata)
    finally:
        server.shutdown()
        server.server_close()


def run(served: Served, target: Path, **kwargs) -> Path:
    return download_dataverse(target, base_url=served.url, progress=False, **kwargs)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_full_download_verifies_and_extracts(dataverse: Served, tmp_path: Path) -> None:
    target = tmp_path / "ham10000"
    assert download_dataverse(target, base_url=dataverse.url, progress=True) == target
    assert (target / "HAM10000_metadata.csv").read_bytes() == METADATA_CSV
    assert {"HAM10000_images_part_1/ISIC_0000001.jpg", "HAM10000_images_part_1/ISIC_0000002.jpg",
            "HAM10000_images_part_2/ISIC_0000003.jpg"} <= files_under(target)
    with Image.open(target / "HAM10000_images_part_2" / "ISIC_0000003.jpg") as image:
        assert image.size == (8, 6)
    assert not any(name.endswith((".part", ".tmp")) for name in files_under(target))
    assert not [p for p in target.iterdir() if p.is_dir() and p.name.startswith(".")]
    assert not (target / "HAM10000_segmentations_lesion_tschandl").exists()
    paths = [path for path, _ in dataverse.state.log]
    assert "/api/access/datafile/103?format=original" in paths
    assert not any(p.startswith(("/api/access/datafile/104", "/api/access/datafile/105")) for p in paths)


def test_loader_reads_the_downloaded_folder(dataverse: Served, tmp_path: Path) -> None:
    from helpers.data import load_ham10000

    index = load_ham10000(run(dataverse, tmp_path / "ham10000"), progress=False)
    assert sorted(index["image_id"]) == ["ISIC_0000001", "ISIC_0000002", "ISIC_0000003"]


def test_segmentations_on_request_without_double_folder(dataverse: Served, tmp_path: Path) -> None:
    target = run(dataverse, tmp_path / "ham10000", include_segmentations=True)
    assert (target / "HAM10000_segmentations_lesion_tschandl" / "ISIC_0000001_segmentation.png").is_file()
    assert (target / ".HAM10000_segmentations_lesion_tschandl.zip.extracted").read_text().startswith("sha256:")


@pytest.mark.parametrize("keep_archives", [True, False])
def test_rerun_downloads_nothing(dataverse: Served, tmp_path: Path, keep_archives: bool) -> None:
    target = run(dataverse, tmp_path / "ham10000", keep_archives=keep_archives)
    assert (target / "HAM10000_images_part_1.zip").exists() == keep_archives
    dataverse.state.log.clear()
    run(dataverse, target, keep_archives=keep_archives)
    assert len(dataverse.state.log) == 1
    assert dataverse.state.log[0][0].startswith("/api/datasets/:persistentId/?persistentId=")


def test_wrong_file_raises_naming_file_and_both_checksums(dataverse: Served, tmp_path: Path) -> None:
    dataverse.part_2.served = zip_bytes({"ISIC_0000003.jpg": jpeg(9)})
    expected = hashlib.md5(dataverse.part_2.content).hexdigest()
    actual = hashlib.md5(dataverse.part_2.served).hexdigest()
    target = tmp_path / "ham10000"
    with pytest.raises(DownloadError, match="HAM10000_images_part_2.zip") as caught:
        run(dataverse, target)
    assert expected in str(caught.value) and actual in str(caught.value)
    assert not (target / "HAM10000_images_part_2.zip").exists()
    assert not (target / "HAM10000_images_part_2.zip.part").exists()
    assert not (target / "HAM10000_images_part_2").exists()
    assert not (target / "HAM10000_metadata.csv").exists()


def test_resume_sends_range_and_gives_identical_file(dataverse: Served, tmp_path: Path) -> None:
    target = tmp_path / "ham10000"
    target.mkdir()
    half = len(dataverse.part_1.content) // 2
    (target / "HAM10000_images_part_1.zip.part").write_bytes(dataverse.part_1.content[:half])
    run(dataverse, target)
    assert ("/storage/101", f"bytes={half}-") in dataverse.state.log
    assert (target / "HAM10000_images_part_1.zip").read_bytes() == dataverse.part_1.content
    assert (target / "HAM10000_images_part_1" / "ISIC_0000001.jpg").is_file()


def test_broken_connection_keeps_the_partial_and_a_rerun_resumes(dataverse: Served, tmp_path: Path) -> None:
    half = len(dataverse.part_2.content) // 2
    dataverse.state.cut_once["/storage/102"] = half
    target = tmp_path / "ham10000"
    with pytest.raises(DownloadError, match=r"HAM10000_images_part_2\.zip .*broke off.*run again to resume"):
        run(dataverse, target)
    assert (target / "HAM10000_images_part_2.zip.part").read_bytes() == dataverse.part_2.content[:half]
    run(dataverse, target)
    assert ("/storage/102", f"bytes={half}-") in dataverse.state.log
    assert (target / "HAM10000_images_part_2.zip").read_bytes() == dataverse.part_2.content


def test_size_is_checked_when_there_is_no_checksum(dataverse: Served, tmp_path: Path) -> None:
    dataverse.part_2.checksum_type = None
    dataverse.part_2.served = dataverse.part_2.content + b"trailing junk"
    target = tmp_path / "ham10000"
    with pytest.warns(UserWarning, match="no checksum"), pytest.raises(DownloadError, match="size mismatch for HAM"):
        run(dataverse, target)
    assert not list(target.glob("HAM10000_images_part_2.zip*"))


def test_restart_when_server_ignores_range(dataverse: Served, tmp_path: Path) -> None:
    dataverse.state.honour_range = False
    target = tmp_path / "ham10000"
    target.mkdir()
    (target / "HAM10000_images_part_1.zip.part").write_bytes(b"garbage that must not survive")
    run(dataverse, target)
    assert ("/storage/101", "bytes=29-") in dataverse.state.log
    assert (target / "HAM10000_images_part_1.zip").read_bytes() == dataverse.part_1.content


def test_bad_partial_fails_the_checksum_then_a_rerun_recovers(dataverse: Served, tmp_path: Path) -> None:
    target = tmp_path / "ham10000"
    target.mkdir()
    (target / "HAM10000_images_part_1.zip.part").write_bytes(b"x" * 10)
    with pytest.raises(DownloadError, match="checksum mismatch for HAM10000_images_part_1.zip"):
        run(dataverse, target)
    assert not (target / "HAM10000_images_part_1.zip.part").exists()
    run(dataverse, target)
    assert (target / "HAM10000_images_part_1.zip").read_bytes() == dataverse.part_1.content


def test_complete_partial_is_verified_without_downloading(dataverse: Served, tmp_path: Path) -> None:
    target = tmp_path / "ham10000"
    target.mkdir()
    (target / "HAM10000_images_part_1.zip.part").write_bytes(dataverse.part_1.content)
    run(dataverse, target)
    assert not dataverse.state.requests_for("/storage/101")
    assert not dataverse.state.requests_for("/api/access/datafile/101")


def test_corrupt_final_file_is_downloaded_again(dataverse: Served, tmp_path: Path) -> None:
    target = run(dataverse, tmp_path / "ham10000")
    (target / "HAM10000_metadata.csv").write_bytes(b"edited by hand\n")
    dataverse.state.log.clear()
    with pytest.warns(UserWarning, match="HAM10000_metadata.csv"):
        run(dataverse, target)
    assert (target / "HAM10000_metadata.csv").read_bytes() == METADATA_CSV
    assert [path for path, _ in dataverse.state.log][1:] == ["/api/access/datafile/103?format=original"]


def test_missing_checksum_warns_and_still_downloads(dataverse: Served, tmp_path: Path) -> None:
    dataverse.part_2.checksum_type = None
    with pytest.warns(UserWarning, match="no checksum for HAM10000_images_part_2.zip"):
        target = run(dataverse, tmp_path / "ham10000")
    assert (target / "HAM10000_images_part_2" / "ISIC_0000003.jpg").is_file()


def test_listing_without_a_needed_file_names_it(dataverse: Served, tmp_path: Path) -> None:
    dataverse.state.files.remove(dataverse.part_2)
    with pytest.raises(DownloadError, match="HAM10000_images_part_2"):
        run(dataverse, tmp_path / "ham10000")


def test_http_error_names_the_url(dataverse: Served, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"HTTP 404 .*127\.0\.0\.1.*/api/datasets/"):
        download_dataverse(tmp_path / "x", base_url=dataverse.url + "/nowhere", progress=False)


def test_zip_slip_through_the_download_is_refused(dataverse: Served, tmp_path: Path) -> None:
    dataverse.part_1.content = zip_bytes({"ISIC_0000001.jpg": jpeg(1), "../evil.txt": b"pwned"})
    target = tmp_path / "ham10000"
    with pytest.raises(DownloadError, match=r"\.\./evil\.txt"):
        run(dataverse, target)
    assert not (tmp_path / "evil.txt").exists()
    assert not (target / "HAM10000_images_part_1").exists()


def zip_with_symlink(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        link = zipfile.ZipInfo("link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../../outside")


def tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> None:
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 4
        tf.addfile(ok, io.BytesIO(b"fine"))
        member.size = len(data) if member.isfile() else 0
        tf.addfile(member, io.BytesIO(data) if member.isfile() else None)


def symlink_member(name: str, kind: bytes, link: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, link
    return member


@pytest.mark.parametrize("build, member", [
    (lambda p: p.write_bytes(zip_bytes({"ok.txt": b"fine", "../evil.txt": b"x"})), "../evil.txt"),
    (lambda p: p.write_bytes(zip_bytes({"ok.txt": b"fine", "a/../../evil.txt": b"x"})), "a/../../evil.txt"),
    (lambda p: p.write_bytes(zip_bytes({"ok.txt": b"fine", "/tmp/evil.txt": b"x"})), "/tmp/evil.txt"),
    (lambda p: p.write_bytes(zip_bytes({"ok.txt": b"fine", "..\\evil.txt": b"x"})), repr("..\\evil.txt")[1:-1]),
    (zip_with_symlink, "link"),
])
def test_unsafe_zip_members_are_refused(tmp_path: Path, build, member: str) -> None:
    target = tmp_path / "target"
    target.mkdir()
    archive = target / "bad.zip"
    build(archive)
    with pytest.raises(DownloadError, match=re.escape(member)):
        extract_archive(archive, target)
    assert sorted(p.name for p in target.iterdir()) == ["bad.zip"]
    assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.rglob("ok.txt"))


@pytest.mark.parametrize("member, data", [
    (tarfile.TarInfo("../evil.txt"), b"x"),
    (tarfile.TarInfo("/evil.txt"), b"x"),
    (symlink_member("link", tarfile.SYMTYPE, "/etc/passwd"), b""),
    (symlink_member("hard", tarfile.LNKTYPE, "ok.txt"), b""),
])
def test_unsafe_tar_members_are_refused(tmp_path: Path, member: tarfile.TarInfo, data: bytes) -> None:
    target = tmp_path / "target"
    target.mkdir()
    archive = target / "bad.tar.gz"
    tar_with(archive, member, data)
    with pytest.raises(DownloadError, match=re.escape(member.name)):
        extract_archive(archive, target)
    assert sorted(p.name for p in target.iterdir()) == ["bad.tar.gz"]
    assert not (tmp_path / "evil.txt").exists() and not list(tmp_path.rglob("ok.txt"))


def test_tar_gz_extracts_once_into_a_single_folder(tmp_path: Path) -> None:
    archive = tmp_path / "masks.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, data in {"masks/a.png": png(), "masks/sub/b.png": png()}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    dest = extract_archive(archive, tmp_path)
    assert dest == tmp_path / "masks" and files_under(dest) == {"a.png", "sub/b.png"}
    (dest / "a.png").write_bytes(b"kept")
    assert extract_archive(archive, tmp_path) == dest
    assert (dest / "a.png").read_bytes() == b"kept"


def test_interrupted_extraction_is_redone(tmp_path: Path) -> None:
    archive = tmp_path / "HAM10000_images_part_1.zip"
    archive.write_bytes(zip_bytes({"ISIC_0000001.jpg": jpeg(1)}))
    half_done = tmp_path / "HAM10000_images_part_1"
    half_done.mkdir()
    (half_done / "stale.jpg").write_bytes(b"half")
    (tmp_path / ".HAM10000_images_part_1.zip.abc.tmp").mkdir()
    dest = extract_archive(archive, tmp_path)
    assert files_under(dest) == {"ISIC_0000001.jpg"}
    assert not (tmp_path / ".HAM10000_images_part_1.zip.abc.tmp").exists()
    assert (tmp_path / ".HAM10000_images_part_1.zip.extracted").is_file()


def test_unsupported_archive_is_named(tmp_path: Path) -> None:
    (tmp_path / "data.rar").write_bytes(b"x")
    with pytest.raises(DownloadError, match="data.rar"):
        extract_archive(tmp_path / "data.rar", tmp_path)


def fake_kaggle_download(calls: list[dict]):
    def download(url: str, data_dir: str = ".", **kwargs) -> None:
        credentials = Path("kaggle.json")
        calls.append({"url": url, "cwd": Path.cwd(), "credentials": json.loads(credentials.read_text()),
                      "credentials_path": credentials.resolve()})
        root = Path(data_dir) / url.rstrip("/").split("/")[-1]
        for folder, image_id in (("HAM10000_images_part_1", "ISIC_0000001"), ("HAM10000_images_part_2", "ISIC_0000003"),
                                 ("ham10000_images_part_1", "ISIC_0000001")):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / f"{image_id}.jpg").write_bytes(jpeg(1))
        (root / "HAM10000_metadata.csv").write_bytes(METADATA_CSV)
        (root / "hmnist_28_28_RGB.csv").write_text("pixel0000,label\n0,1\n")
    return download


def test_kaggle_with_env_credentials(no_kaggle_credentials: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import opendatasets

    monkeypatch.setenv("KAGGLE_USERNAME", "student")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    calls: list[dict] = []
    monkeypatch.setattr(opendatasets, "download", fake_kaggle_download(calls))
    target = tmp_path / "data" / "ham10000"
    assert download_ham10000(target, source="kaggle") == target.resolve()
    assert calls[0]["url"] == "https://www.kaggle.com/datasets/kmader/skin-cancer-mnist-ham10000"
    assert calls[0]["credentials"] == {"username": "student", "key": "secret"}
    assert not calls[0]["credentials_path"].exists()
    assert Path.cwd() == tmp_path / "work"
    assert sorted(p.name for p in target.iterdir()) == [
        ".kaggle.complete", "HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_metadata.csv"]
    assert (target / "HAM10000_metadata.csv").read_bytes() == METADATA_CSV
    assert (target / "HAM10000_images_part_2" / "ISIC_0000003.jpg").is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["ham10000"]
    download_kaggle(target)
    assert len(calls) == 1


def test_kaggle_with_kaggle_json_in_home(no_kaggle_credentials: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import opendatasets

    config = no_kaggle_credentials / ".kaggle"
    config.mkdir()
    (config / "kaggle.json").write_text('{"username": "student", "key": "from-file"}')
    calls: list[dict] = []
    monkeypatch.setattr(opendatasets, "download", fake_kaggle_download(calls))
    target = download_kaggle(tmp_path / "ham10000")
    assert calls[0]["cwd"] == config and calls[0]["credentials"]["key"] == "from-file"
    assert (target / "HAM10000_images_part_1" / "ISIC_0000001.jpg").is_file()
    assert not list(target.glob("hmnist_*")) and not (target / "ham10000_images_part_1").exists()


def test_kaggle_without_credentials_and_no_tty_explains_setup(no_kaggle_credentials: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import opendatasets

    def must_not_run(*args, **kwargs) -> None:
        raise AssertionError("opendatasets would prompt on stdin")

    monkeypatch.setattr(opendatasets, "download", must_not_run)
    with pytest.raises(DownloadError) as caught:
        download_kaggle(tmp_path / "ham10000")
    message = str(caught.value)
    assert "kaggle.json" in message and "KAGGLE_USERNAME" in message and "KAGGLE_KEY" in message
    assert "stdin" in message and "dataverse" in message


def test_kaggle_rejected_credentials_become_a_download_error(no_kaggle_credentials: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import opendatasets

    def kaggle_exits(*args, **kwargs) -> None:
        raise SystemExit(1)

    monkeypatch.setenv("KAGGLE_USERNAME", "student")
    monkeypatch.setenv("KAGGLE_KEY", "wrong")
    monkeypatch.setattr(opendatasets, "download", kaggle_exits)
    with pytest.raises(DownloadError, match="kmader/skin-cancer-mnist-ham10000"):
        download_kaggle(tmp_path / "ham10000")
    assert not (tmp_path / ".ham10000.kaggle-staging").exists()


def test_unknown_source_names_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        download_ham10000(tmp_path, source="zenodo")


def test_dispatch_to_dataverse(dataverse: Served, tmp_path: Path) -> None:
    target = download_ham10000(tmp_path / "ham10000", base_url=dataverse.url, progress=False)
    assert (target / "HAM10000_metadata.csv").read_bytes() == METADATA_CSV


def test_non_http_base_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base_url"):
        download_dataverse(tmp_path, base_url="file:///etc", progress=False)


def test_requests_carry_a_user_agent(dataverse: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original = fetch.urllib.request.urlopen

    def spy(request, timeout):
        seen.append(request.get_header("User-agent"))
        assert timeout == fetch.TIMEOUT_S
        return original(request, timeout=timeout)

    monkeypatch.setattr(fetch.urllib.request, "urlopen", spy)
    run(dataverse, tmp_path / "ham10000")
    assert seen and all(agent == fetch.USER_AGENT for agent in seen)
