"""Plain ``nbgrader autograde`` in the course refuses, and says what to run instead.

Autograding executes student code. ``course grade`` runs it sandboxed, under limits, and
scores it from the trusted side; nbgrader's own autograde (also what Formgrader's autograde
button calls) would run it unsandboxed with the instructor's rights, and with ``--force`` it
first deletes the ``course grade`` result it replaces. The course's ``nbgrader_config.py``
makes this class Autograde's exporter: nbgrader builds the exporter before it touches any
folder or the gradebook, so refusing here changes nothing. The refusal names the command to
run and, where ``course grade`` has failed the submission, why (Formgrader shows such a
submission as "needs autograding": its button then explains it).

``COURSE_PLAIN_AUTOGRADE=1`` lets plain autograde run (a trusted notebook, e.g. your own).
Scratch courses of ``course grade`` put nbgrader's exporter back (:mod:`worker`).
"""
from __future__ import annotations

from pathlib import Path

from nbconvert.exporters import NotebookExporter

ALLOW_VAR = "COURSE_PLAIN_AUTOGRADE"


class PlainAutogradeRefused(RuntimeError):
    """Raised instead of autograding outside ``course grade``."""


def refusal(course: Path, lab: str, student: str) -> str:
    """What to say instead of autograding ``student``'s ``lab`` (``*`` for every one)."""
    from coursetools.grading import ledger

    lab = lab if lab and lab != "*" else "LAB"
    who = f" --students {student}" if student and student != "*" else ""
    text = (f"This course grades with `course grade {lab}{who} --force`, not `nbgrader autograde` "
            "(nor Formgrader's autograde button, which runs it): autograding runs the student's "
            "code, and course grade runs it sandboxed and under limits, where plain nbgrader would "
            "run it on this machine with your rights and first delete the result course grade "
            "recorded.")
    known = ledger.read(course, lab, student) if who else None
    if known is not None:
        text += f" course grade's last verdict on this submission: {known.status_text}."
    return text + f" To autograde a trusted notebook with plain nbgrader anyway, set {ALLOW_VAR}=1."


class RefusePlainAutograde(NotebookExporter):
    """Autograde's exporter in the course: refuses before anything is written."""

    def __init__(self, *args, **kwargs):
        parent = kwargs.get("parent")
        coursedir = getattr(parent, "coursedir", None)
        course = Path(getattr(coursedir, "root", ".") or ".")
        raise PlainAutogradeRefused(refusal(course, getattr(coursedir, "assignment_id", ""),
                                            getattr(coursedir, "student_id", "")))
