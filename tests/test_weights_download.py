"""Pretrained weights download through the libraries' own mechanisms, from a local server started here.

Only the weights' address is redirected (a torchvision Weights entry with a local URL, timm's pretrained
config, the Hugging Face endpoint); torch.hub, timm and huggingface_hub do the downloading themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import threading
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub  # imported now: it reads HF_HUB_OFFLINE and HF_ENDPOINT once, at import
import pytest
import torch
import torchvision
from torchvision.models._api import WeightsEnum

from helpers import models
from helpers.models import weights
from helpers.models import WeightsUnavailableError, create_model, ensure_weights, pretrained_available

RESNET18_FILE = "resnet18-f37072fd.pth"
VIT_TINY_REPO = "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"


class WeightsServer:
    """An HTTP server on 127.0.0.1 serving `files` (URL path -> bytes), counting connections and requests.

    Responses carry the headers huggingface_hub reads (X-Repo-Commit, ETag), so it can stand in for the hub.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.connections = 0
        self._server = self._make_server()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _make_server(self) -> http.server.ThreadingHTTPServer:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send_head(self) -> bytes | None:
                outer.requests.append(f"{self.command} {self.path}")
                body = outer.files.get(self.path)
                self.send_response(404 if body is None else 200)
                if body is not None:
                    self.send_header("X-Repo-Commit", "a" * 40)
                    self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.send_header("Content-Length", str(0 if body is None else len(body)))
                self.end_headers()
                return body

            def do_HEAD(self) -> None:
                self._send_head()

            def do_GET(self) -> None:
                body = self._send_head()
                if body is not None:
                    self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: object, client_address: object) -> bool:
                outer.connections += 1
                return True

        return Server(("127.0.0.1", 0), Handler)

    def serve_state_dict(self, path: str, state: dict[str, torch.Tensor], tmp_path: Path) -> bytes:
        """Serve `state` at URL `path`, written as torch.save or safetensors by the file's suffix."""
        file = tmp_path / Path(path).name
        if file.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, str(file))
        else:
            torch.save(state, file)
        self.files[path] = file.read_bytes()
        return self.files[path]

    def fetched(self, path: str) -> int:
        """How many times the file at `path` was downloaded (GET requests)."""
        return self.requests.count(f"GET {path}")

    def stop(self) -> None:
        """Shut the server down and close its port (later connections are refused)."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(autouse=True)
def local_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty caches, downloads allowed, no proxy, and any connection beyond 127.0.0.1 fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_CACHE", "SKIN_LESION_OFFLINE", "HF_HUB_OFFLINE", "http_proxy", "https_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    connect = socket.socket.connect

    def loopback_connect(self: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1"):
            raise AssertionError(f"network access attempted: {address}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_connect)


@pytest.fixture
def server() -> Iterator[WeightsServer]:
    running = WeightsServer()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def vit_state() -> dict[str, torch.Tensor]:
    """A 1000-class vit_tiny state dict at 224 px, standing in for the published weights."""
    return create_model("vit_tiny", 1000).state_dict()


def checkpoints(tmp_path: Path) -> Path:
    return tmp_path / "torch" / "hub" / "checkpoints"


def serve_torchvision_weights(monkeypatch: pytest.MonkeyPatch, arch: str, url: str) -> None:
    """Make `arch`'s IMAGENET1K_V1 weights a real torchvision Weights entry whose URL is `url`."""
    real = torchvision.models.get_model_weights
    entry = real(arch)["IMAGENET1K_V1"]
    local = WeightsEnum("LocalWeights", {"IMAGENET1K_V1": dataclasses.replace(entry.value, url=url)})
    monkeypatch.setattr(torchvision.models, "get_model_weights", lambda name: local if name == arch else real(name))


def assert_full_message(err: WeightsUnavailableError, name: str, filename: str, folder: Path) -> None:
    """The message names the model, the file and its folder, and every way out."""
    message = str(err)
    for part in (repr(name), filename, str(folder), f"ensure_weights({name!r})",
                 "pretrained='path/to/weights.pth'", "pretrained=False"):
        assert part in message, part


def test_resnet_weights_download_once_into_the_torch_hub_cache(
    server: WeightsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = f"/models/{RESNET18_FILE}"
    served = torchvision.models.resnet18().state_dict()
    body = server.serve_state_dict(path, served, tmp_path)
    serve_torchvision_weights(monkeypatch, "resnet18", server.url + path)
    assert not pretrained_available("resnet18")

    model = create_model("resnet18", 7, pretrained=True)
    cached = checkpoints(tmp_path) / RESNET18_FILE
    assert cached.read_bytes() == body and server.fetched(path) == 1
    assert "100%" in capsys.readouterr().err  # torch.hub's progress bar
    for key, value in model.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(value, served[key]), key
    assert model.fc.out_features == 7

    connections = server.connections
    assert pretrained_available("resnet18") and ensure_weights("resnet18") == cached
    imagenet = create_model("resnet18", 1000, pretrained=True)
    assert torch.equal(imagenet.fc.weight, served["fc.weight"])
    assert server.connections == connections and server.fetched(path) == 1  # the cache answered


def test_unreachable_server_raises_the_full_message_chained_from_the_network_error(
    server: WeightsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_torchvision_weights(monkeypatch, "resnet18", f"{server.url}/models/{RESNET18_FILE}")
    server.stop()  # its port is closed now
    for attempt in (lambda: create_model("resnet18", 7, pretrained=True), lambda: ensure_weights("resnet18")):
        with pytest.raises(WeightsUnavailableError) as caught:
            attempt()
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)
        first_line = str(caught.value).splitlines()[0]
        assert "'resnet18'" in first_line and "ConnectionRefusedError" in first_line
        assert_full_message(caught.value, "resnet18", RESNET18_FILE, checkpoints(tmp_path))
    assert not list(checkpoints(tmp_path).glob("*"))


def test_failed_download_raises_the_full_message_chained_from_the_http_error(
    server: WeightsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"/models/{RESNET18_FILE}"  # the server answers 404: torch.hub's own request fails
    serve_torchvision_weights(monkeypatch, "resnet18", server.url + path)
    with pytest.raises(WeightsUnavailableError) as caught:
        create_model("resnet18", 7, pretrained=True)
    assert isinstance(caught.value.__cause__, urllib.error.HTTPError)
    assert "HTTPError" in str(caught.value).splitlines()[0] and server.requests == [f"GET {path}"]
    assert_full_message(caught.value, "resnet18", RESNET18_FILE, checkpoints(tmp_path))
    assert not list(checkpoints(tmp_path).glob("*"))  # no partial file left behind


def test_offline_settings_fail_at_once_without_connecting(
    server: WeightsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_torchvision_weights(monkeypatch, "resnet18", f"{server.url}/models/{RESNET18_FILE}")
    monkeypatch.setenv("SKIN_LESION_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=r"downloads are disabled \(SKIN_LESION_OFFLINE=1\)") as caught:
        create_model("resnet18", 7, pretrained=True)
    assert "once SKIN_LESION_OFFLINE is unset" in str(caught.value)
    assert_full_message(caught.value, "resnet18", RESNET18_FILE, checkpoints(tmp_path))

    monkeypatch.delenv("SKIN_LESION_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # forbids the Hugging Face hub, where timm gets vit_tiny
    with pytest.raises(WeightsUnavailableError, match=r"disabled \(HF_HUB_OFFLINE=1\)"):
        ensure_weights("vit_tiny")
    assert server.connections == 0


def use_local_hub(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Point huggingface_hub at `url` and let it go online, as HF_ENDPOINT and HF_HUB_OFFLINE do at its import."""
    constants = huggingface_hub.constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")


def assert_vit_weights_loaded(model: torch.nn.Module, served: dict[str, torch.Tensor]) -> None:
    """Every tensor but the head and the resampled position embedding is the served one."""
    for key, value in model.state_dict().items():
        if not key.startswith("head.") and key != "pos_embed":
            assert torch.equal(value, served[key]), key
    assert model.pos_embed.shape == (1, 1 + 4 * 4, 192) and model.head.out_features == 7


def test_timm_weights_download_from_the_hugging_face_hub_into_its_cache(
    server: WeightsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vit_state: dict[str, torch.Tensor]
) -> None:
    path = f"/{VIT_TINY_REPO}/resolve/main/model.safetensors"
    body = server.serve_state_dict(path, vit_state, tmp_path)
    use_local_hub(monkeypatch, server.url)

    model = create_model("vit_tiny", 7, pretrained=True, image_size=64)
    cached = models.weights_file("vit_tiny")
    assert cached.is_relative_to(tmp_path / "hf" / "hub") and cached.read_bytes() == body
    assert server.fetched(path) == 1
    assert_vit_weights_loaded(model, vit_state)

    connections = server.connections
    assert models.pretrained_available("vit_tiny") and ensure_weights("vit_tiny") == cached
    assert server.connections == connections  # the cache answered (loading it: test_models.py)


def test_timm_weights_download_from_the_config_url_through_torch_hub(
    server: WeightsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vit_state: dict[str, torch.Tensor]
) -> None:
    path = "/weights/vit_tiny_local.pth"
    body = server.serve_state_dict(path, vit_state, tmp_path)
    cfg = dataclasses.replace(
        weights.timm_cfg("vit_tiny_patch16_224"), url=server.url + path, hf_hub_id=None, custom_load=False
    )
    monkeypatch.setattr(weights, "timm_cfg", lambda arch: cfg)

    model = create_model("vit_tiny", 7, pretrained=True, image_size=64)
    assert (checkpoints(tmp_path) / "vit_tiny_local.pth").read_bytes() == body and server.fetched(path) == 1
    assert_vit_weights_loaded(model, vit_state)
    assert ensure_weights("vit_tiny") == checkpoints(tmp_path) / "vit_tiny_local.pth"
    assert server.fetched(path) == 1

    server.files.clear()  # a fresh cache and a server without the file: timm's request fails
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "other"))
    with pytest.raises(WeightsUnavailableError, match=r"'vit_tiny'.*download failed \(HTTPError") as caught:
        create_model("vit_tiny", 7, pretrained=True, image_size=64)
    assert isinstance(caught.value.__cause__, urllib.error.HTTPError)
    assert_full_message(caught.value, "vit_tiny", "vit_tiny_local.pth", tmp_path / "other" / "hub" / "checkpoints")
