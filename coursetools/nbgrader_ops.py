"""Thin wrappers around nbgrader: its own commands (as an instructor types them) and its
Python API (Validator, Gradebook), always relative to one course directory."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader


def _put_interpreter_bin_on_path() -> None:
    """nbgrader runs ``alembic`` (and kernels run ``python``) by name: make sure the names resolve
    to this environment even when ``course`` is started as ``.venv/bin/course`` without
    activating the virtual environment."""
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


_put_interpreter_bin_on_path()


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message carries the end of its log."""


def run(course: Path, *args: str, timeout: float | None = None, env: dict | None = None) -> str:
    """Run ``nbgrader <args>`` in ``course`` (a student's folder too, with their ``env``) with
    this interpreter; return its log."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    proc = subprocess.run(cmd, cwd=course, capture_output=True, text=True, timeout=timeout, env=env)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(log.strip().splitlines()[-40:])
        raise NbgraderError(f"`nbgrader {' '.join(args)}` failed in {course} "
                            f"(exit {proc.returncode}):\n{tail}")
    return log


def load_config(course: Path) -> Config:
    """The course's nbgrader_config.py as a traitlets Config, rooted at ``course``."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    config.CourseDirectory.root = str(course)
    return config


def db_url(course: Path) -> str:
    config = load_config(course)
    if "db_url" in config.CourseDirectory:
        return config.CourseDirectory.db_url
    return f"sqlite:///{(course / 'gradebook.db').resolve()}"


def gradebook_exists(course: Path) -> bool:
    """Whether the course has a gradebook yet (opening a missing SQLite one would create it)."""
    url = db_url(course)
    return not url.startswith("sqlite:///") or Path(url[len("sqlite:///"):]).is_file()


def course_id(course: Path) -> str:
    return load_config(course).CourseDirectory.course_id


@dataclass
class ValidationResult:
    """What ``nbgrader validate`` found in one notebook (sources of offending cells)."""
    path: Path
    failed: list[str] = field(default_factory=list)   # tests that failed (normal mode)
    passed: list[str] = field(default_factory=list)   # tests that passed (--invert mode)
    changed: list[str] = field(default_factory=list)  # read-only cells that were edited
    errors: list[str] = field(default_factory=list)   # raw errors of failed tests

    @property
    def ok(self) -> bool:
        return not (self.failed or self.passed or self.changed)


def validate(course: Path, path: Path, invert: bool = False) -> ValidationResult:
    """``nbgrader validate [--invert] path`` through nbgrader's Validator."""
    from nbgrader.validator import Validator

    results = Validator(config=load_config(course), invert=invert).validate(str(path))
    outcome = ValidationResult(path=path)
    outcome.failed = [r["source"] for r in results.get("failed", [])]
    outcome.errors = [r.get("raw_error", "") for r in results.get("failed", [])]
    outcome.passed = [r["source"] for r in results.get("passed", [])]
    outcome.changed = [r["source"] for r in results.get("changed", [])]
    outcome.changed += [r["source"] for r in results.get("type_changed", [])]
    return outcome


@dataclass
class LabScore:
    student: str
    lab: str
    score: float
    max_score: float
    cells: dict[str, tuple[float, float]]  # grade id -> (score, max)


def scores(course: Path, lab: str, auto: bool = False) -> list[LabScore]:
    """Every graded submission of ``lab`` in the gradebook, with per-cell scores (with
    ``auto``, the autograder's scores, ignoring manual overrides)."""
    from nbgrader.api import Gradebook

    rows = []
    with Gradebook(db_url(course), course_id(course)) as gb:
        assignment = gb.find_assignment(lab)
        for submission in gb.assignment_submissions(lab):
            cells = {}
            for nb in submission.notebooks:
                for grade in nb.grades:
                    cells[grade.name] = (grade.auto_score if auto else grade.score, grade.max_score)
            rows.append(LabScore(submission.student.id, lab, submission.score,
                                 assignment.max_score, cells))
    return sorted(rows, key=lambda r: r.student)
