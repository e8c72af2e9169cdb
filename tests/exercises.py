"""The "Try it yourself" exercises of the notebooks, read as edits a test can apply.

An exercise states its edit in one of two forms in its Markdown cell:

- Set `name = value` in the parameters cell          (a papermill parameter; `a = 1` and `b = 2` sets two)
- In the cell with `anchor`, change `old` to `new`   (a text edit of the one code cell holding `anchor`)

`exercise_edits(notebook)` finds them; `apply_edits` returns a copy of the notebook with the code edits made and
the parameters to pass to papermill.
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass
from typing import Any

TRY_IT = "Try it yourself"
SET = re.compile(r"[Ss]et ((?:`\w+ = [^`]+`(?:,? and |, )?)+) in the parameters cell")
ASSIGNMENT = re.compile(r"`(\w+) = ([^`]+)`")
CHANGE = re.compile(r"[Ii]n the cell with `([^`]+)`, change `([^`]+)` to `([^`]+)`")


@dataclass(frozen=True)
class Edit:
    """One exercise's edit: a parameter (anchor None) or a text change in the code cell holding anchor."""

    exercise: str  # the exercise's title
    name_or_old: str
    value_or_new: str
    anchor: str | None = None


def source(cell: dict[str, Any]) -> str:
    """A cell's source as one string."""
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def title(text: str) -> str:
    """The exercise's name: what follows "Try it yourself:" up to the end of its bold or heading text."""
    found = re.search(TRY_IT + r":? ([^*\n]+)", text)
    return found.group(1).strip().rstrip(".") if found else text.strip().splitlines()[0]


def exercise_cells(notebook: dict[str, Any]) -> list[str]:
    """The Markdown of every "Try it yourself" cell."""
    return [source(c) for c in notebook["cells"] if c["cell_type"] == "markdown" and TRY_IT in source(c)]


def exercise_edits(notebook: dict[str, Any]) -> dict[str, list[Edit]]:
    """Exercise title -> the edits its text states (an empty list: it states none a test can apply)."""
    found = {}
    for text in exercise_cells(notebook):
        name = title(text)
        edits = [Edit(name, key, value) for group in SET.findall(text) for key, value in ASSIGNMENT.findall(group)]
        edits += [Edit(name, old, new, anchor) for anchor, old, new in CHANGE.findall(text)]
        found[name] = edits
    return found


def apply_edits(notebook: dict[str, Any], edits: list[Edit]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a copy of notebook with every code edit made, the parameters to pass); ValueError when one cannot apply."""
    edited = copy.deepcopy(notebook)
    parameters: dict[str, Any] = {}
    for edit in edits:
        if edit.anchor is None:
            parameters[edit.name_or_old] = ast.literal_eval(edit.value_or_new)
            continue
        cells = [c for c in edited["cells"] if c["cell_type"] == "code" and edit.anchor in source(c)]
        if len(cells) != 1:
            raise ValueError(f"{edit.exercise}: {len(cells)} code cells hold `{edit.anchor}` (one expected)")
        text = source(cells[0])
        if text.count(edit.name_or_old) != 1:
            raise ValueError(f"{edit.exercise}: `{edit.name_or_old}` is not once in the cell with `{edit.anchor}`")
        cells[0]["source"] = text.replace(edit.name_or_old, edit.value_or_new)
    return edited, parameters
