"""helpers/ in visible layers with one-way dependencies: core -> data -> models -> training -> evaluation -> course
-> reporting -> commands -> the curated API.

Each layer is a subpackage of helpers (its modules are the package's modules), except the commands: the modules at
the top level of helpers, each a command line (`python -m helpers.<name>`). A module may import modules of its own
layer or lower ones, never higher ones, and the imports between modules (those inside functions too) form no cycle.
The imports are read from the source with ast, so nothing is imported to check them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"

# Lowest first: the layers' subpackages, then the command modules, then helpers/__init__.py (the curated API).
SUBPACKAGES = ("core", "data", "models", "training", "evaluation", "course", "reporting")
COMMANDS = ("train", "predict", "evaluate", "reports", "scaling", "colab", "budget")  # python -m helpers.<name>


LAYER_NAMES = (*SUBPACKAGES, "commands", "api")


def layer_of(name: str) -> int | None:
    """The rank of module `name`'s layer (lowest 0), or None for a top-level module that is not a command."""
    head = name.split(".")[0]
    if name == "data.__main__":  # `python -m helpers.data`: a command that lives in its package
        return LAYER_NAMES.index("commands")
    if head in SUBPACKAGES:
        return SUBPACKAGES.index(head)
    if name in COMMANDS:
        return LAYER_NAMES.index("commands")
    return LAYER_NAMES.index("api") if name == "" else None


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
    return [f"helpers.{name or '__init__'} ({LAYER_NAMES[layer_of(name)]}) imports helpers.{target} "
            f"({LAYER_NAMES[layer_of(target)]})"
            for name in sorted(graph) for target in sorted(graph[name]) if layer_of(target) > layer_of(name)]


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


def test_every_module_has_a_layer_and_the_top_level_only_commands() -> None:
    names = set(import_graph())
    stray = sorted(name for name in names if layer_of(name) is None)
    assert not stray, f"the top level of helpers holds only __init__.py and the commands; move these into a layer: {stray}"
    assert {name for name in names if "." not in name} >= set(COMMANDS), "a command module is missing"


def test_no_module_imports_a_higher_layer() -> None:
    upward = upward_imports(import_graph())
    assert not upward, "a lower layer imports a higher one:\n" + "\n".join(upward)


def test_imports_form_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(f"helpers.{name}" for name in cycle)


KNOWN = {"data", "data.images", "data.tensors", "models", "models.weights", "core.errors", "training.loop"}


@pytest.mark.parametrize(("name", "is_package", "source", "expected"), [
    ("course.plots", False, "from ..data.images import load_resized", {"data.images"}),
    ("models.registry", False, "from . import weights", {"models.weights"}),
    ("models", True, "from .weights import x\nfrom ..core.errors import DataError", {"models.weights", "core.errors"}),
    ("data.tensors", False, "def f():\n    from ..training.loop import fit", {"training.loop"}),
    ("course.eda", False, "import helpers.training.loop as t\nfrom helpers.data import tensors\nimport numpy",
     {"training.loop", "data.tensors"}),
])
def test_imports_are_read_relative_to_the_module(name: str, is_package: bool, source: str, expected: set[str]) -> None:
    assert imports_of(name, source, is_package, KNOWN) == expected


def test_an_upward_import_and_a_cycle_are_found() -> None:
    graph = {name: set(targets) for name, targets in import_graph().items()}
    graph["data.tensors"].add("training.loop")  # ImageData importing the training loop, as it once did
    assert "helpers.data.tensors (data) imports helpers.training.loop (training)" in upward_imports(graph)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
