"""Where things are in a course directory: labs, their notebooks, the generated folders."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATED = ("release", "solutions")


def course_root(start: Path | None = None) -> Path:
    """The course directory: the nearest folder at or above ``start`` (default: the current
    directory, then this checkout) that holds ``nbgrader_config.py`` and ``source/``. An
    explicit ``start`` never falls back to this checkout (``--dir`` must name a course)."""
    candidates = [Path(start or os.getcwd()).resolve()]
    candidates += list(candidates[0].parents) + ([] if start else [REPO_ROOT])
    for folder in candidates:
        if (folder / "nbgrader_config.py").is_file() and (folder / "source").is_dir():
            return folder
    raise FileNotFoundError(
        f"no course directory (a folder with nbgrader_config.py and source/) at or above {candidates[0]}")


def labs(root: Path) -> list[str]:
    """Assignment ids, in order: every ``source/<id>/`` that holds ``<id>.ipynb``."""
    source = root / "source"
    return sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").is_file())


def notebook(root: Path, step: str, lab: str, student: str | None = None) -> Path:
    """Path of a lab's notebook in ``source``/``release``/``solutions`` or, with ``student``,
    in ``submitted``/``autograded``."""
    if student is None:
        return root / step / lab / f"{lab}.ipynb"
    return root / step / student / lab / f"{lab}.ipynb"


def select_labs(root: Path, wanted: list[str] | None) -> list[str]:
    """Validate a user's lab selection (ids or unique prefixes such as ``lab01``)."""
    available = labs(root)
    if not wanted:
        return available
    chosen = []
    for name in wanted:
        matches = [lab for lab in available if lab == name or lab.startswith(name)]
        if len(matches) != 1:
            raise SystemExit(f"unknown or ambiguous lab {name!r}; labs are: {', '.join(available)}")
        chosen.append(matches[0])
    return chosen
