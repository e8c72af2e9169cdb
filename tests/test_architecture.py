"""helpers/ has one-way dependencies: data -> models -> inference -> training -> evaluation -> studies -> reports.

Every module of helpers is placed in one layer below; a module may import modules of its own layer or lower
ones, never higher ones, and the imports between modules (those inside functions too) form no cycle. The
imports are read from the source with ast, so nothing is imported to check them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"

# Lowest first. Names are relative to helpers: "" is helpers/__init__.py, "data" helpers/data/__init__.py.
LAYERS: dict[str, tuple[str, ...]] = {
    # used by every layer: exceptions, atomic files, parameter checks, command-line conventions, mixed precision
    "core": ("errors", "io", "validate", "cli", "precision", "machine"),
    "data": ("data", "data.__main__", "data.labels", "data.images", "data.ham10000", "data.folder", "data.source",
             "data.splits", "data.melanoma", "data.synthetic", "data.duplicates", "data.download", "data.tensors",
             "data.dataset"),
    "models": ("models", "models.cnn", "models.weights", "models.registry", "models.classifier", "models.profile"),
    # a model applied to images: fit validates with it every epoch, so it sits below training
    "inference": ("inference",),
    "training": ("augment", "training", "probe"),
    "evaluation": ("metrics", "decision", "subgroups", "evaluation", "gradcam", "screening", "published", "predict",
                   "evaluate", "leakage"),
    "studies": ("config", "recipes", "recipes.arms", "recipes.preprocessing", "recipes.custom_cnn",
                "recipes.resnet_transfer", "recipes.efficientnet_binary", "recipes.scaling_study", "eda", "powerlaw", "scaling", "plots", "tables",
                "cost", "cost.devices", "cost.plan", "cost.calibration", "cost.estimate", "cost.series"),
    "reports": ("results", "site", "reports", "colab", "finish"),
    # helpers/__init__.py: the curated notebook API, loading any layer's names on first use
    # command lines that assemble a whole run from the layers below
    "commands": ("train", "train_recipe", "budget"),
    "api": ("",),
}
LAYER_NAMES = list(LAYERS)
LAYER_OF = {module: rank for rank, names in enumerate(LAYERS.values()) for module in names}


def module_name(path: Path) -> str:
    """helpers/data/images.py -> 'data.images'; helpers/models/__init__.py -> 'models'."""
    parts = list(path.relative_to(HELPERS).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(name: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` imports anywhere in `source` (at module level or in functions)."""
    package = (name.split(".") if name else []) if is_package else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name.removeprefix("helpers").lstrip(".") for alias in node.names
                      if alias.name.split(".")[0] == "helpers"}
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "helpers"):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                target = node.module.removeprefix("helpers").lstrip(".")
            submodules = {f"{target}.{alias.name}".lstrip(".") for alias in node.names} & known
            # `from . import weights` depends on the submodule only; `from .models import create_model` on models
            found |= submodules if len(submodules) == len(node.names) else {target, *submodules}
    return (found & known) - {name}


def import_graph() -> dict[str, set[str]]:
    """Every module of helpers -> the modules of helpers it imports."""
    paths = {module_name(path): path for path in sorted(HELPERS.rglob("*.py"))}
    return {name: imports_of(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", set(paths))
            for name, path in paths.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of a higher layer's module, as a readable line."""
    return [f"helpers.{name or '__init__'} ({LAYER_NAMES[LAYER_OF[name]]}) imports helpers.{target} "
            f"({LAYER_NAMES[LAYER_OF[target]]})"
            for name in sorted(graph) for target in sorted(graph[name]) if LAYER_OF[target] > LAYER_OF[name]]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> list[str] | None:
        state[name] = "open"
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                trail = [*path, name]
                return [*trail[trail.index(target):], target]
            if target not in state and (cycle := visit(target, [*path, name])):
                return cycle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [])):
            return cycle
    return None


def test_every_module_has_a_layer() -> None:
    names = set(import_graph())
    assert not names - set(LAYER_OF), f"put these modules into a layer of LAYERS: {sorted(names - set(LAYER_OF))}"
    assert not set(LAYER_OF) - names, f"LAYERS lists modules that do not exist: {sorted(set(LAYER_OF) - names)}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = upward_imports(import_graph())
    assert not upward, "a lower layer imports a higher one:\n" + "\n".join(upward)


def test_imports_form_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(f"helpers.{name}" for name in cycle)


KNOWN = {"data", "data.images", "data.tensors", "models", "models.weights", "errors", "training"}


@pytest.mark.parametrize(("name", "is_package", "source", "expected"), [
    ("plots", False, "from .data.images import load_resized", {"data.images"}),
    ("models.registry", False, "from . import weights", {"models.weights"}),
    ("models", True, "from .weights import x\nfrom ..errors import DataError", {"models.weights", "errors"}),
    ("data.tensors", False, "def f():\n    from ..training import fit", {"training"}),
    ("eda", False, "import helpers.training as t\nfrom helpers.data import tensors\nimport numpy", {"training", "data.tensors"}),
])
def test_imports_are_read_relative_to_the_module(name: str, is_package: bool, source: str, expected: set[str]) -> None:
    assert imports_of(name, source, is_package, KNOWN) == expected


def test_an_upward_import_and_a_cycle_are_found() -> None:
    graph = {name: set(targets) for name, targets in import_graph().items()}
    graph["data.tensors"].add("training")  # ImageData importing the training loop, as it once did
    assert "helpers.data.tensors (data) imports helpers.training (training)" in upward_imports(graph)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
