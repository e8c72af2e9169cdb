"""Per-notebook settings for each preset: what `smoke`, `cpu` and `gpu` train, in one place.

`cpu` is sized so the whole series runs in about an hour on a 2-core laptop-class CPU; `gpu` uses the
full settings of the reference notebooks; `smoke` runs each notebook in seconds on tiny data for tests.
Settings named `reference_*` are those of a reference notebook's own recipe.
"""

from __future__ import annotations

from typing import Any

from .config import check_mode
from .data.images import RESIZE_POLICIES
from .validate import check_bool, check_choice, check_int, check_number

CHECK_EPOCHS = 2  # a check run's cap on every epoch count of a recipe
# Earlier names of settings, still accepted as overrides (the notebooks' parameters cells keep them).
RENAMED_SETTINGS: dict[str, str] = {"seed_epochs": "reference_epochs", "seed_image_size": "reference_image_size"}

RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "06_scaling_study": {
        # Grid (helpers.scaling.build_grid): `models` from scratch x `fractions` x `seeds` (fractions <= seeds_up_to get
        # every seed, larger ones the first), plus pretrained and scratch arms of each of `pretrained_models` whose
        # ImageNet weights are on the machine, at `pretrained_fractions`. Every run: `epochs` validation rounds, the
        # subset repeated round(min_images / (epochs x n)) times (at least once) within a round, so every run sees about
        # max(epochs x n, min_images) images; AdamW one-cycle, the rest of the recipe in helpers.scaling.FIXED_RECIPE.
        # cpu, 64 px, 2-core CPU, ~7,000 train images (nested subsets 367/705/1,762/3,502/7,005 images), 32 runs:
        # train img/s alexnet 259, resnet18 381, vit_tiny 392, mixer_small 185, lite0 204; evaluation (2 val rounds +
        # test, 1,505 images each) measured 311 (mixer_small) to 1,800 img/s. Per arm (7 runs; lite0 arms 2 runs):
        # alexnet ~190 s, resnet18 ~130 s, vit_tiny ~120 s, mixer_small ~300 s, lite0 pretrained + scratch ~180 s:
        # ~15.5 minutes of runs, plus data, fits and plots: about 16 minutes. Dropped against gpu: resnet34/50/101/152,
        # vit_b_16, mixer_b16_224 (vit_tiny and mixer_small stand in), fraction 0.02, seed 2, seed 1 above 0.1, 128 px.
        # gpu (not measured here): 172 runs if every model's weights are present, hours on one GPU: use
        # `python -m helpers.scaling --preset gpu --shard K/N` on N GPUs, then run the notebook to merge.
        "smoke": {"models": ["improved_cnn", "vit_tiny"], "image_size": 32, "fractions": [0.25, 0.5, 1.0],
                  "seeds": [0, 1], "seeds_up_to": 0.25, "pretrained_models": ["efficientnet_lite0"],
                  "pretrained_fractions": [0.25], "epochs": 1, "min_images": 64, "batch_size": 32, "lr": 2e-3,
                  "pretrained_lr": 2e-3, "weight_decay": 0.05, "n_boot": 100, "resume": False},
        "cpu": {"models": ["alexnet", "resnet18", "vit_tiny", "mixer_small"], "image_size": 64,
                "fractions": [0.05, 0.1, 0.25, 0.5, 1.0], "seeds": [0, 1], "seeds_up_to": 0.1,
                "pretrained_models": ["efficientnet_lite0", "resnet18", "vit_tiny"], "pretrained_fractions": [0.05, 1.0],
                "epochs": 2, "min_images": 3200, "batch_size": 64, "lr": 1e-3, "pretrained_lr": 1e-3,
                "weight_decay": 0.05, "n_boot": 1000, "resume": True},
        "gpu": {"models": ["alexnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_b_16",
                           "mixer_b16_224"], "image_size": 128, "image_sizes": {"vit_b_16": 224, "mixer_b16_224": 224},
                "fractions": [0.02, 0.05, 0.1, 0.25, 0.5, 1.0], "seeds": [0, 1, 2], "seeds_up_to": 0.25,
                "pretrained_models": ["alexnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_b_16",
                                      "mixer_b16_224", "efficientnet_lite0"],
                "pretrained_fractions": [0.02, 0.05, 0.1, 0.25, 0.5, 1.0], "epochs": 30, "min_images": 60000,
                "batch_size": 128, "lr": 5e-4, "pretrained_lr": 1e-4, "weight_decay": 0.05, "n_boot": 1000,
                "resume": True},
    },
    "05_efficientnet_binary": {
        # EfficientNet-Lite0 (ImageNet) on melanoma10k (task A: reference recipe, then ours) and HAM10000 binary
        # (task B). cpu, 64 px on a 2-core CPU (Lite0 trains ~200 img/s; A has ~8,600 train images, B ~7,000):
        # reference recipe capped at 3 of its 10 epochs ~2.5 min, ours 5 epochs ~3.5 min, B 6 epochs ~3.5 min,
        # caching, hashing and evaluation ~1 min: about 11 minutes in all. gpu: 224 px and the reference's full 10.
        "smoke": {"image_size": 32, "reference_epochs": 1, "epochs": 1, "ham_epochs": 1, "lr": 2e-3},
        "cpu": {"image_size": 64, "reference_epochs": 3, "epochs": 5, "ham_epochs": 6, "lr": 2e-3},
        "gpu": {"image_size": 224, "reference_epochs": 10, "epochs": 12, "ham_epochs": 15, "lr": 2e-3},
    },
    "02_preprocessing": {
        # The leakage demonstration: one model, one recipe, trained twice (image-level vs lesion-disjoint split).
        # No augmentation and the last epoch kept, so that the model can memorise its training images within a
        # short budget; cpu: about 2 minutes per training on a 2-core CPU (full data, 64 px, ~900 img/s).
        "smoke": {"model": "improved_cnn", "image_size": 32, "epochs": 2, "lr": 2e-3, "augment": False},
        "cpu": {"model": "improved_cnn", "image_size": 64, "epochs": 12, "lr": 2e-3, "augment": False},
        "gpu": {"model": "improved_cnn", "image_size": 128, "epochs": 30, "lr": 2e-3, "augment": False},
    },
    "03_custom_cnn": {
        # The reference recipe: the reference CNN at 128 px, batch 16, Adam 1e-4, 25 epochs, plain cross-entropy.
        # cpu: ~45 s per reference-recipe epoch on a 2-core CPU; 8 epochs with and 8 without dropout plus the
        # improved CNN (30 epochs at 64 px) took 16 minutes, keeping the series (61 min) inside its 75.
        "smoke": {"reference_image_size": 32, "reference_epochs": 1, "image_size": 32, "epochs": 2,
                  "dropout_epochs": 1},
        "cpu": {"reference_image_size": 128, "reference_epochs": 8, "image_size": 64, "epochs": 30,
                "dropout_epochs": 8},
        "gpu": {"reference_image_size": 128, "reference_epochs": 25, "image_size": 128, "epochs": 40,
                "dropout_epochs": 25},
    },
    "04_resnet_transfer": {
        # cpu, 64 px on a 2-core CPU (train img/s: resnet18 ~380, efficientnet_lite0 ~200; ~7,000 train images):
        # 2 ResNet runs x 8 epochs ~ 6 min, probe ~1 min, fine-tune 6 epochs ~ 4 min, DermaMNIST 28 px ~1 min,
        # 64 px ResNet ~3 min and fine-tune ~4 min, fine-tune at 28 px ~1 min: about 21 minutes in all.
        # 128 px DermaMNIST only on gpu (4x the 64 px cost: another ~15 minutes here).
        "smoke": {"image_size": 32, "epochs": 2, "probe_epochs": 1, "finetune_epochs": 2,
                  "dermamnist_sizes": [28], "dermamnist_best_sizes": [28], "dermamnist_epochs": 1},
        "cpu": {"image_size": 64, "epochs": 8, "probe_epochs": 4, "finetune_epochs": 6,
                "dermamnist_sizes": [28, 64], "dermamnist_best_sizes": [28, 64], "dermamnist_epochs": 8},
        "gpu": {"image_size": 128, "epochs": 30, "probe_epochs": 10, "finetune_epochs": 20,
                "dermamnist_sizes": [28, 64, 128], "dermamnist_best_sizes": [28, 64, 128], "dermamnist_epochs": 30},
    },
}


def recipe(notebook: str, preset: str, **overrides: Any) -> dict[str, Any]:
    """The settings of notebook under preset, with non-None overrides (the notebook's parameters) applied.

    An override may use a setting's earlier name (RENAMED_SETTINGS, e.g. seed_epochs for reference_epochs).
    """
    if notebook not in RECIPES:
        raise ValueError(f"no recipe for notebook {notebook!r}; known: {', '.join(RECIPES)}")
    if preset not in RECIPES[notebook]:
        raise ValueError(f"notebook {notebook} has no {preset!r} preset; known: {', '.join(RECIPES[notebook])}")
    settings = dict(RECIPES[notebook][preset])
    current = {key: RENAMED_SETTINGS.get(key, key) for key in overrides}  # the name as passed -> today's name
    unknown = sorted(key for key, name in current.items() if name not in settings)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for {notebook}; known: {', '.join(settings)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    if len({current[key] for key in given}) < len(given):
        raise ValueError(f"{notebook}: a setting is given under both its name and its earlier name: {', '.join(given)}")
    for key, value in given.items():  # errors name the parameter as passed
        check_override(f"{notebook} parameter {key}", value, settings[current[key]])
    settings.update({current[key]: value for key, value in given.items()})
    return check_settings(notebook, settings) if check_mode() else settings


def check_override(name: str, value: Any, default: Any) -> None:
    """ValueError naming the parameter when an override does not fit the kind of the recipe's own value.

    Whole numbers stay whole and >= 1 (seeds >= 0), other numbers >= 0 (fractions in (0, 1]), switches
    True or False, lists non-empty lists of such values, a resize policy one of the known ones.
    """
    key = name.rsplit(" ", 1)[-1]
    if key.endswith("policy"):
        check_choice(name, value, RESIZE_POLICIES)
    elif isinstance(default, bool):
        check_bool(name, value)
    elif isinstance(default, int):
        check_int(name, value, minimum=0 if key in ("seed", "seeds") or key.endswith("_seed") else 1)
    elif isinstance(default, float):
        check_number(name, value, above_minimum="fraction" in key, maximum=1.0 if "fraction" in key else None)
    elif isinstance(default, str) and (not isinstance(value, str) or not value):
        raise ValueError(f"{name} must be a non-empty string; got {value!r}")
    elif isinstance(default, list):
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"{name} must be a non-empty list; got {value!r}")
        for item in value if default else ():
            check_override(name, item, default[0])


def preset_models(preset: str) -> list[tuple[str, int]]:
    """Every (model, input size) the notebooks train under preset, pretrained arms and their offline stand-ins included."""
    pairs = {(RECIPES["02_preprocessing"][preset]["model"], RECIPES["02_preprocessing"][preset]["image_size"])}
    cnn = RECIPES["03_custom_cnn"][preset]
    pairs |= {("reference_cnn", cnn["reference_image_size"]), ("improved_cnn", cnn["image_size"])}
    transfer = RECIPES["04_resnet_transfer"][preset]
    for size in {transfer["image_size"], *transfer["dermamnist_sizes"]}:
        pairs |= {("resnet18", size), ("efficientnet_lite0", size)}  # notebook 04's default depth and offline arm
    binary = RECIPES["05_efficientnet_binary"][preset]["image_size"]
    pairs |= {("efficientnet_b0", binary), ("efficientnet_lite0", binary)}
    grid = RECIPES["06_scaling_study"][preset]
    for model in grid["models"] + grid["pretrained_models"]:
        pairs.add((model, int(grid.get("image_sizes", {}).get(model, grid["image_size"]))))
    return sorted(pairs)


def check_settings(notebook: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A check run's settings: the same models, input sizes, batch sizes and schedules, at most CHECK_EPOCHS epochs,
    and for the scaling grid one run of each distinct configuration (model, input size, pretrained or not)."""
    checked = {key: min(value, CHECK_EPOCHS) if key.endswith("epochs") and isinstance(value, int) else value
               for key, value in settings.items()}
    if notebook == "06_scaling_study":
        checked.update(fractions=[1.0], seeds=settings["seeds"][:1], seeds_up_to=0.0, pretrained_fractions=[1.0],
                       min_images=0, n_boot=100, resume=False)
    return checked
