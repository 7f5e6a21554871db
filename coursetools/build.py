"""Generate release/ and solutions/ from source/, and prove the committed copies are in sync."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from coursetools import layout, nbgrader_ops, notebooks


def build(course: Path, labs: list[str]) -> None:
    """Regenerate ``release/<lab>`` (solutions stubbed, hidden tests removed) and
    ``solutions/<lab>`` (reference code, no hidden tests, no outputs) with nbgrader.

    nbgrader runs in a scratch copy of the course, so building never touches the course's
    gradebook (nbgrader refuses to change a lab's cells once it holds submissions); the
    generated folders are then copied into place."""
    with tempfile.TemporaryDirectory(prefix="course-build-") as tmp:
        scratch = scratch_course(course, Path(tmp))
        generate(scratch, labs)
        for step in layout.GENERATED:
            for lab in labs:
                shutil.rmtree(course / step / lab, ignore_errors=True)
                shutil.copytree(scratch / step / lab, course / step / lab)


def generate(course: Path, labs: list[str]) -> None:
    """nbgrader's generate_assignment and generate_solution, in ``course`` itself."""
    for lab in labs:
        nbgrader_ops.run(course, "generate_assignment", lab, "--force")
        nbgrader_ops.run(course, "generate_solution", lab, "--force")


def scratch_course(course: Path, into: Path) -> Path:
    """A copy of the course's source/ and nbgrader_config.py in ``into``, for building and
    grading without touching the real course directory."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copy2(course / "nbgrader_config.py", into / "nbgrader_config.py")
    shutil.copytree(course / "source", into / "source", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "models", "data"))
    return into


def _tree(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p for p in folder.rglob("*")
            if p.is_file() and ".ipynb_checkpoints" not in p.parts}


def out_of_sync(course: Path, labs: list[str]) -> list[str]:
    """Differences between the committed release/ and solutions/ and a fresh build."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="course-sync-") as tmp:
        fresh = scratch_course(course, Path(tmp))
        generate(fresh, labs)
        for step in layout.GENERATED:
            for lab in labs:
                committed, expected = _tree(course / step / lab), _tree(fresh / step / lab)
                for rel in sorted(set(committed) | set(expected)):
                    where = f"{step}/{lab}/{rel}"
                    if rel not in committed:
                        problems.append(f"{where} is missing")
                    elif rel not in expected:
                        problems.append(f"{where} should not exist (not generated from source)")
                    elif rel.endswith(".ipynb"):
                        if notebooks.comparable(notebooks.read(committed[rel])) != \
                                notebooks.comparable(notebooks.read(expected[rel])):
                            problems.append(f"{where} differs from a fresh build")
                    elif committed[rel].read_bytes() != expected[rel].read_bytes():
                        problems.append(f"{where} differs from a fresh build")
    return problems
