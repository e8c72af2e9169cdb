"""The frame of every notebook: a Colab setup cell that shows as a one-line title, and an ending of Recap, Questions,
Further research (2 to 4 open projects) and a link to the next notebook, with the bookkeeping `finish(...)` cell last.

The checks read the committed .ipynb files as JSON (no kernel); each check returns the problems it finds, and the last
tests feed them broken copies of a notebook to show that they do find them.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("[0-9][0-9]_*.ipynb"))
COURSE_INDEX = ROOT / "README.md"  # where the last notebook points while there is no next one
ENDING = ("## Recap", "## Questions", "## Further research")
FINISH_TAG = "finish"
SETUP_TAG = "colab-bootstrap"
LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")
LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def next_target(path: Path) -> Path:
    """The notebook after path (NN + 1), else the course index."""
    following = sorted(path.parent.glob(f"{int(path.name[:2]) + 1:02d}_*.ipynb"))
    return following[0] if following else COURSE_INDEX


def calls_finish(code: str) -> bool:
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "finish"
               for node in ast.walk(ast.parse(code)))


def setup_problems(notebook: dict) -> list[str]:
    """The Colab setup cell: the first code cell, a `#@title` first line and Colab's form view (code hidden)."""
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    if not code or SETUP_TAG not in tags(code[0]):
        return [f"the first code cell is not the setup cell tagged {SETUP_TAG!r}"]
    cell, problems = code[0], []
    first = source(cell).split("\n", 1)[0]
    if not re.fullmatch(r"#@title \S.*", first):
        problems.append(f"the setup cell's first line is not '#@title <title>': {first!r}")
    if cell["metadata"].get("cellView") != "form":
        problems.append("the setup cell's metadata lacks \"cellView\": \"form\"")
    return problems


def ending_problems(notebook: dict, path: Path) -> list[str]:
    """Recap, Questions, Further research (2 to 4 projects), a link to what comes next, the finish cell last."""
    cells = notebook["cells"]
    problems = []
    last = cells[-1] if cells else None
    if last is None or last["cell_type"] != "code" or FINISH_TAG not in tags(last) or not calls_finish(source(last)):
        problems.append(f"the last cell is not a code cell tagged {FINISH_TAG!r} that calls finish(...)")
    others = [i for i, cell in enumerate(cells[:-1]) if FINISH_TAG in tags(cell)
              or (cell["cell_type"] == "code" and calls_finish(source(cell)))]
    if others:
        problems.append(f"cells {others} also call finish(...) or carry the {FINISH_TAG!r} tag")
    found = {}
    for heading in ENDING:
        at = [i for i, cell in enumerate(cells)
              if cell["cell_type"] == "markdown" and source(cell).split("\n", 1)[0].strip() == heading]
        if len(at) != 1:
            problems.append(f"{len(at)} markdown cells start with {heading!r}, expected one")
        else:
            found[heading] = at[0]
    if len(found) < len(ENDING):
        return problems
    positions = [found[heading] for heading in ENDING]
    if positions != sorted(positions):
        problems.append(f"the ending is out of order: {dict(zip(ENDING, positions))}")
    code_after = [i for i in range(min(positions), len(cells) - 1) if cells[i]["cell_type"] == "code"]
    if code_after:
        problems.append(f"code cells {code_after} come after {ENDING[0]!r}: only the finish cell may")
    research = source(cells[found["## Further research"]])
    items = len(LIST_ITEM.findall(research))
    if not 2 <= items <= 4:
        problems.append(f"Further research lists {items} projects, expected 2 to 4")
    target = next_target(path)
    links = {(path.parent / href.split("#")[0]).resolve(): href
             for cell in cells[found["## Further research"]:] if cell["cell_type"] == "markdown"
             for href in LINK.findall(source(cell)) if not href.startswith(("http://", "https://"))}
    missing = [href for resolved, href in links.items() if not resolved.exists()]
    if missing:
        problems.append(f"the ending links to files that do not exist: {missing}")
    if target.resolve() not in links:
        problems.append(f"the ending has no markdown link to {target.relative_to(ROOT)} after Further research")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_ends_with_recap_questions_further_research_next_and_finish(path: Path) -> None:
    assert ending_problems(read(path), path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_setup_cell_shows_as_a_title_on_colab(path: Path) -> None:
    assert setup_problems(read(path)) == []


def test_the_course_has_notebooks_and_an_index() -> None:
    assert len(NOTEBOOKS) >= 6 and COURSE_INDEX.is_file()


# --- the checks find what they look for ----------------------------------------------------------------------------

def _heading_index(notebook: dict, heading: str) -> int:
    return next(i for i, cell in enumerate(notebook["cells"]) if source(cell).startswith(heading))


def _broken(path: Path, change) -> list[str]:
    notebook = copy.deepcopy(read(path))
    change(notebook)
    return ending_problems(notebook, path)


def test_ending_checks_find_each_fault() -> None:
    path = NOTEBOOKS[0]
    assert ending_problems(read(path), path) == [], "the unbroken notebook must pass for this test to mean anything"

    def finish_moved_up(nb: dict) -> None:
        nb["cells"].insert(_heading_index(nb, "## Recap"), nb["cells"].pop())

    def untagged(nb: dict) -> None:
        nb["cells"][-1]["metadata"]["tags"].remove(FINISH_TAG)

    def no_further_research(nb: dict) -> None:
        del nb["cells"][_heading_index(nb, "## Further research")]

    def swapped(nb: dict) -> None:
        i, j = _heading_index(nb, "## Recap"), _heading_index(nb, "## Questions")
        nb["cells"][i], nb["cells"][j] = nb["cells"][j], nb["cells"][i]

    def five_projects(nb: dict) -> None:
        nb["cells"][_heading_index(nb, "## Further research")]["source"] = \
            ["## Further research\n", "\n"] + [f"- project {k}\n" for k in range(5)]

    def one_project(nb: dict) -> None:
        nb["cells"][_heading_index(nb, "## Further research")]["source"] = ["## Further research\n", "\n", "- one\n"]

    def dead_link(nb: dict) -> None:
        for cell in nb["cells"]:
            cell["source"] = [line.replace(next_target(path).name, "99_missing.ipynb") for line in cell["source"]]

    def code_in_the_ending(nb: dict) -> None:
        nb["cells"].insert(-1, {"cell_type": "code", "metadata": {}, "source": ["x = 1"], "outputs": [],
                                "execution_count": None})

    expected = {finish_moved_up: "the last cell is not", untagged: "the last cell is not",
                no_further_research: "'## Further research'", swapped: "out of order", five_projects: "lists 5 projects",
                one_project: "lists 1 projects", dead_link: "do not exist", code_in_the_ending: "come after"}
    for change, message in expected.items():
        problems = _broken(path, change)
        assert any(message in problem for problem in problems), f"{change.__name__}: {problems}"


def test_setup_check_finds_a_plain_comment_and_a_missing_form_view() -> None:
    cell = {"cell_type": "code", "metadata": {"tags": [SETUP_TAG], "cellView": "form"}, "outputs": [],
            "execution_count": None, "source": ["#@title Colab setup\n", "import sys"]}
    assert setup_problems({"cells": [cell]}) == []
    plain = copy.deepcopy(cell)
    plain["source"][0] = "# Colab setup\n"
    del plain["metadata"]["cellView"]
    problems = setup_problems({"cells": [plain]})
    assert len(problems) == 2 and "#@title" in problems[0] and "cellView" in problems[1]
    untagged = copy.deepcopy(cell)
    untagged["metadata"]["tags"] = []
    assert "tagged" in setup_problems({"cells": [untagged]})[0]
