"""Notebook-level operations on nbgrader notebooks: graded cells, submissions, comparison."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import nbformat

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"
# "## Exercise 3 — Loss function and optimizer (2 points)": label, then title
EXERCISE_HEADING = re.compile(r"^\s*#{1,6}\s*(Exercise\s+[\w.]+)\s*(?:[—–:-]+\s*(.*?))?\s*(?:\(\s*[\d.]+\s*points?\s*\))?\s*$",
                              re.IGNORECASE)


def kernel_config():
    """traitlets config for running notebooks with nbclient as nbgrader runs them here (see
    ``nbgrader_config.py``): CurveZMQ-encrypted kernel sockets where jupyter_client supports
    it, which also keeps ipykernel's "running over TCP without encryption" warning away."""
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    config = Config()
    if "transport_encryption" in KernelManager.class_trait_names():
        config.KernelManager.transport_encryption = "auto"
    return config


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def solution_cells(nb) -> dict[str, object]:
    """Cells students write in, by grade id."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("solution")}


def graded_cells(nb) -> dict[str, object]:
    """Cells that carry points, by grade id."""
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("grade")}


def exercise_headings(cells) -> dict[str, tuple[str, str]]:
    """(label, title) of the exercise every nbgrader cell belongs to, by grade id: the nearest
    markdown heading above it of the form "## Exercise 3 — title (k points)". Works on
    NotebookNodes and on plain JSON cells (source as a list of lines)."""
    found, heading = {}, ("", "")
    for cell in cells:
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") == "markdown":
            for line in source.splitlines():
                match = EXERCISE_HEADING.match(line)
                if match:
                    heading = (match.group(1).strip(), (match.group(2) or "").strip())
                    break
        grade_id = nbgrader_meta(cell).get("grade_id")
        if grade_id and heading[0]:
            found[grade_id] = heading
    return found


def exercise_name(label: str, title: str) -> str:
    """"Exercise 3 — Loss function and optimizer" (just the label when there is no title)."""
    return f"{label} — {title}" if title else label


def fill_solutions(release_nb, source_nb, replacements: dict[str, str] | None = None):
    """A submission built from a release notebook: every solution cell gets the reference
    code from ``source_nb``, except cells named in ``replacements`` (grade id -> code)."""
    replacements = dict(replacements or {})
    reference = solution_cells(source_nb)
    submission = nbformat.from_dict(release_nb)
    for grade_id, cell in solution_cells(submission).items():
        if grade_id in replacements:
            cell.source = replacements.pop(grade_id)
        elif grade_id in reference:
            cell.source = reference[grade_id].source
        else:
            raise KeyError(f"solution cell {grade_id!r} of the release has no twin in the source")
    if replacements:
        raise KeyError(f"no solution cell with grade id(s) {sorted(replacements)}")
    return submission


def write_submission(course: Path, student: str, lab: str, nb, when: datetime | None = None) -> Path:
    """Place ``nb`` as ``submitted/<student>/<lab>/<lab>.ipynb`` with a valid timestamp.txt."""
    folder = course / "submitted" / student / lab
    write(nb, folder / f"{lab}.ipynb")
    stamp = (when or datetime.now(timezone.utc)).strftime(TIMESTAMP_FORMAT)
    (folder / "timestamp.txt").write_text(stamp)
    return folder


def comparable(nb) -> dict:
    """A notebook as plain data without the fields that legitimately vary between writes."""
    data = nbformat.from_dict(nb)
    data.metadata.pop("widgets", None)
    for cell in data.cells:
        cell.pop("execution_count", None)
        cell.pop("outputs", None)
    return nbformat.from_dict(data)
