"""Merging one finished submission into the course: autograded copy, gradebook, then ledger.

Only the coordinator calls this, so SQLite never sees concurrent writers. The order makes a
run killed at any point leave complete submissions only: autograded copy (atomic rename) ->
gradebook (one transaction, through nbgrader's Gradebook API) -> ledger (atomic write).
"""
from __future__ import annotations

import os
import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path

from coursetools import nbgrader_ops, notebooks
from coursetools.grading import ledger, submission
from coursetools.grading.ledger import FAILED, Result


def install_autograded(course: Path, result: Result) -> None:
    """Move the scratch autograded notebook into ``autograded/<student>/<lab>`` atomically.
    Only regular files the grader wrote are taken: the notebook and, for nbgrader's
    generate_feedback and release_feedback, timestamp.txt and submission_secret.txt.
    release_feedback reads timestamp.txt (for its log only), so a submission without a usable
    one gets the grading time there; the gradebook keeps its lateness unknown."""
    final = course / "autograded" / result.student / result.lab
    staging = final.parent / f".{result.lab}.incoming"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in (f"{result.lab}.ipynb", "timestamp.txt", submission.SECRET_FILE):
        src = Path(result.autograded_dir) / name
        if src.is_file() and not src.is_symlink():
            shutil.copy2(src, staging / name)
    if not (staging / "timestamp.txt").is_file():
        (staging / "timestamp.txt").write_text(datetime.now(timezone.utc).strftime(notebooks.TIMESTAMP_FORMAT))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def merge_into_gradebook(course: Path, result: Result) -> None:
    """Write one graded submission into the course gradebook in one transaction: the
    submission with its timestamp and every cell's auto score (and a reviewer's zero). A
    student without names gets those ``roster.csv`` lists (coursetools.students)."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    from coursetools import students

    with warnings.catch_warnings(), Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        # nbgrader's add_submission triggers a harmless SQLAlchemy autoflush warning.
        warnings.simplefilter("ignore", SAWarning)
        students.fill_names(gb, result.student, students.roster(course).get(result.student))
        submission = gb.update_or_create_submission(result.lab, result.student, timestamp=result.timestamp)
        for nb in submission.notebooks:
            for grade in nb.grades:
                if grade.name in result.cells:
                    grade.auto_score = result.cells[grade.name][0]
                    if result.decision == "zeroed":
                        grade.manual_score = 0.0
                    elif result.decision == "accepted":
                        grade.manual_score = None
                    grade.needs_manual_grade = False
        gb.db.commit()


def remove_from_gradebook(course: Path, lab: str, student: str) -> None:
    """A submission that now fails must not keep an old grade."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        try:
            gb.remove_submission(lab, student)
        except MissingEntry:
            pass
    shutil.rmtree(course / "autograded" / student / lab, ignore_errors=True)


def record(course: Path, result: Result) -> None:
    """Install a finished result: autograded copy, gradebook, then the ledger."""
    if result.status != FAILED:
        install_autograded(course, result)
        merge_into_gradebook(course, result)
        result.scores_digest = ledger.scores_digest(result.cells)
    else:
        remove_from_gradebook(course, result.lab, result.student)
    ledger.write(course, result)
