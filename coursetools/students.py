"""Students of a course: their names in the gradebook, and removing one without touching others.

Names: nbgrader's Formgrader shows a student without names as "None, None". ``course grade``
fills a student's missing first and last name (and email) from ``roster.csv`` at the course
root when it lists them, in nbgrader's own format (``id,first_name,last_name,email``, the file
``nbgrader db student import`` reads); names set in Formgrader or by that import are never
overwritten.

Removal: ``course remove-student`` deletes a student's (or only some labs') submissions from
the gradebook (nbgrader's Gradebook API), ``submitted/``, ``autograded/``, ``feedback/`` and the
grading ledger ``grading/<lab>/<student>.json``. Nothing of any other student is touched.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

from coursetools import nbgrader_ops
from coursetools.grading import ledger

ROSTER = "roster.csv"
NAME_FIELDS = ("first_name", "last_name", "email")
STUDENT_FOLDERS = ("submitted", "autograded", "feedback")


def roster(course: Path) -> dict[str, dict[str, str]]:
    """Known names by student id, from ``roster.csv`` (empty when there is none)."""
    path = course / ROSTER
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        return {row["id"].strip(): {k: (row.get(k) or "").strip() for k in NAME_FIELDS}
                for row in csv.DictReader(f) if (row.get("id") or "").strip()}


def fill_names(gb, student: str, known: dict[str, str] | None):
    """Create ``student`` in the open gradebook ``gb`` if needed and set the names and email it
    lacks from ``known``; existing values stay. Returns the Student."""
    record = gb.update_or_create_student(student)
    missing = {k: v for k, v in (known or {}).items() if k in NAME_FIELDS and v and not getattr(record, k)}
    if missing:
        record = gb.update_or_create_student(student, **missing)
    return record


def name_students(course: Path, names: dict[str, dict[str, str]]) -> None:
    """Fill missing names of students already in the course gradebook (``names``: id -> fields)."""
    from nbgrader.api import Gradebook, MissingEntry

    if not nbgrader_ops.gradebook_exists(course):
        return
    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        for student, known in names.items():
            try:
                gb.find_student(student)
            except MissingEntry:
                continue
            fill_names(gb, student, known)


def _remove_from_gradebook(course: Path, student: str, labs: list[str] | None) -> list[str]:
    from nbgrader.api import Gradebook, MissingEntry

    removed = []
    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        for lab in labs or [None]:
            try:
                if lab is None:
                    gb.remove_student(student)
                    removed.append("gradebook: the student and their submissions")
                else:
                    gb.remove_submission(lab, student)
                    removed.append(f"gradebook: submission of {lab}")
            except MissingEntry:
                pass
    return removed


def check_id(student: str) -> str:
    """A student id safe to use as a folder name (refuses paths such as ``../x``)."""
    if not student or student in (".", "..") or "/" in student or "\\" in student or "\0" in student:
        raise ValueError(f"not a student id: {student!r}")
    return student


def remove_student(course: Path, student: str, labs: list[str] | None = None) -> list[str]:
    """Remove ``student`` from the course (with ``labs``, only those labs' submissions); return
    what was removed, one phrase per place. The gradebook goes first: a run stopped half-way
    leaves files that a second run removes, never a gradebook entry without its ledger."""
    check_id(student)
    removed = _remove_from_gradebook(course, student, labs) if nbgrader_ops.gradebook_exists(course) else []
    for step in STUDENT_FOLDERS:
        targets = [course / step / student] if labs is None else [course / step / student / lab for lab in labs]
        for target in targets:
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            else:
                continue
            removed.append(str(target.relative_to(course)) + "/")
    ledger_root = course / ledger.LEDGER_DIR
    ledger_labs = labs if labs is not None else sorted(p.name for p in ledger_root.iterdir() if p.is_dir()) \
        if ledger_root.is_dir() else []
    for lab in ledger_labs:
        entry = ledger.path(course, lab, student)
        if entry.is_file():
            entry.unlink()
            removed.append(str(entry.relative_to(course)))
    return removed
