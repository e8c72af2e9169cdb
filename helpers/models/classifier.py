"""A deployable classifier: network + input normalisation + class names, saved as one self-contained checkpoint.

The checkpoint's "arch" is the network's `model_spec` (name, num_classes, kwargs, pretrained): the one record of
its architecture, from which `load_checkpoint` rebuilds it.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..data.images import RESIZE_POLICIES, check_policy
from ..core.errors import CheckpointError
from ..core.io import atomic_path
from .registry import create_model, model_from_spec, model_spec, normalization

CHECKPOINT_FORMAT = "skin-lesion-classifier/1"
REQUIRED_KEYS = ("state_dict", "arch", "classes", "image_size", "normalization")
REQUIRED_SUBKEYS = {"arch": ("name", "num_classes", "kwargs"), "normalization": ("mean", "std")}


class Classifier(nn.Module):
    """Takes uint8 or [0, 1] float images (N, 3, H, W), normalises them and returns logits."""

    def __init__(self, net: nn.Module, classes: Sequence[str], image_size: int, mean: Sequence[float],
                 std: Sequence[float], resize_policy: str = "center_crop") -> None:
        super().__init__()
        check_policy(resize_policy)  # here, not first when an image is predicted
        self.net = net  # made by create_model: model_spec(net) is how to rebuild it
        self.classes = list(classes)
        self.image_size = int(image_size)
        self.resize_policy = resize_policy
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for a batch of images; uint8 input is scaled to [0, 1] first."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return self.net((images - self.mean) / self.std)


def build_classifier(name: str, classes: Sequence[str], image_size: int, pretrained: bool | str | Path = False,
                     resize_policy: str = "center_crop", **kwargs: Any) -> Classifier:
    """Create the named network with a head for `classes`, wrapped with its normalisation."""
    kwargs = {"image_size": image_size, **kwargs}
    net = create_model(name, len(classes), pretrained=pretrained, **kwargs)
    mean, std = normalization(name, bool(pretrained))
    return Classifier(net, classes, image_size, mean, std, resize_policy)


def save_checkpoint(model: Classifier, path: str | Path, config: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write weights, architecture, classes, image size, normalisation and config to path, atomically."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.net.state_dict().items()},
        "arch": model_spec(model.net),
        "classes": model.classes,
        "image_size": model.image_size,
        "resize_policy": model.resize_policy,
        "normalization": {"mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist()},
        "config": config or {},
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Classifier, dict[str, Any]]:
    """Rebuild the classifier saved at path and return it with its payload; CheckpointError says what is wrong.

    Checked in order: the file is there and readable; it is a torch zip archive; it loads with
    weights_only=True (anything but tensors and plain values is refused, never unpickled); its format
    tag and keys; its architecture accepts its weights.
    """
    path = Path(path)
    payload = _read_payload(path, map_location)
    _check_payload(path, payload)
    arch = payload["arch"]
    try:
        net = model_from_spec(arch)
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path}: its architecture {arch['name']!r} cannot be built here: {err}") from err
    _check_weights_fit(path, net, payload["state_dict"], model_spec(net)["name"])
    net.load_state_dict(payload["state_dict"])
    norm = payload["normalization"]
    model = Classifier(net, payload["classes"], payload["image_size"], norm["mean"], norm["std"],
                       payload.get("resize_policy", "center_crop"))
    return model.eval(), payload


def _read_payload(path: Path, map_location: str | torch.device) -> Any:
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    try:
        with open(path, "rb") as handle:
            empty = not handle.read(1)
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read: {err.strerror or err}") from err
    if empty:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): it was never written completely; save it again")
    if not _is_torch_zip(path):
        raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint (not a torch zip archive): "
                              "the file is truncated or of another kind")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        raise CheckpointError(f"checkpoint {path} refused: the file contains code or objects other than tensors"
                              + (f" ({found.group(1)})" if found else "") + "; it was not loaded") from err
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"checkpoint {path} is damaged: {_first_sentence(err)}") from err


def _is_torch_zip(path: Path) -> bool:
    """True for a zip archive with torch.save's data.pkl record."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _check_payload(path: Path, payload: Any) -> None:
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a {CHECKPOINT_FORMAT} checkpoint")
    if payload.get("format") != CHECKPOINT_FORMAT:
        bare = bool(payload) and all(isinstance(v, torch.Tensor) for v in payload.values())
        raise CheckpointError(
            f"checkpoint {path} has format {payload.get('format')!r}, not {CHECKPOINT_FORMAT!r}"
            + (": it looks like a bare state dict; save the Classifier with helpers.models.save_checkpoint"
               if bare else ""))
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    missing += [f"{key}.{sub}" for key, subs in REQUIRED_SUBKEYS.items() if isinstance(payload.get(key), dict)
                for sub in subs if sub not in payload[key]]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the key(s) {', '.join(missing)}")
    problem = _payload_problem(payload)
    if problem:
        raise CheckpointError(f"checkpoint {path}: {problem}")


def _payload_problem(payload: dict[str, Any]) -> str | None:
    arch, classes, norm = payload["arch"], payload["classes"], payload["normalization"]
    if not isinstance(arch, dict) or not isinstance(arch.get("kwargs"), dict):
        return "arch must be a dict with name, num_classes and a kwargs dict"
    if not isinstance(norm, dict):
        return "normalization must be a dict with mean and std"
    if not isinstance(payload["state_dict"], dict):
        return f"state_dict is a {type(payload['state_dict']).__name__}, not a dict of tensors"
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return f"classes must be a non-empty list of names; got {classes!r}"
    if arch["num_classes"] != len(classes):
        return f"arch.num_classes is {arch['num_classes']!r} but {len(classes)} classes are named"
    if isinstance(payload["image_size"], bool) or not isinstance(payload["image_size"], int) or payload["image_size"] < 1:
        return f"image_size must be a positive whole number; got {payload['image_size']!r}"
    if payload.get("resize_policy", "center_crop") not in RESIZE_POLICIES:
        return f"resize_policy must be one of {', '.join(RESIZE_POLICIES)}; got {payload['resize_policy']!r}"
    for key in ("mean", "std"):
        if not isinstance(norm[key], (list, tuple)) or len(norm[key]) != 3:
            return f"normalization.{key} must be 3 numbers; got {norm[key]!r}"
    return None


def _check_weights_fit(path: Path, net: nn.Module, state: dict[str, Any], name: str) -> None:
    """CheckpointError naming the first mismatched, missing and unexpected tensors when state does not fit net."""
    expected = net.state_dict()
    mismatched = [f"{k} has shape {_shape(state[k])} in the file but {_shape(v)} in the model"
                  for k, v in expected.items() if k in state and _shape(state[k]) != _shape(v)]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    problems = mismatched[:3] + [f"{label} {', '.join(names[:3])}" + (" …" if len(names) > 3 else "")
                                 for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
    if problems:
        more = f" (and {len(mismatched) - 3} more size mismatches)" if len(mismatched) > 3 else ""
        raise CheckpointError(f"checkpoint {path}: its weights do not fit the architecture {name!r}: "
                              + "; ".join(problems) + more)


def _shape(value: Any) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _first_sentence(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return re.split(r"(?<=[^.])\.\s|\n", text, maxsplit=1)[0].rstrip(".")
