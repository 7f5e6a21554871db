"""Grades export (``nbgrader export`` with this course's config, and ``course export``).

nbgrader's CSV plus a ``status`` column from the ledger (graded, needs review, failed, and an
instructor's review decision), written only after the gradebook has been checked against the
ledger: scores that changed behind the grader's back stop the export with the students named.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from nbgrader.plugins.export import CsvExportPlugin

from coursetools.grading import ledger


class GradebookMismatch(RuntimeError):
    """The gradebook no longer matches what the grader merged."""


def check_gradebook(course: Path, labs: list[str]) -> None:
    problems = [f"{lab}/{p}" for lab in labs for p in ledger.verify(course, lab)]
    if problems:
        raise GradebookMismatch(
            "the gradebook's scores no longer match the grading ledger (changed outside `course grade`):\n  "
            + "\n  ".join(problems[:20]) + "\nRegrade them with `course grade LAB --force --students ...`, "
            "or find out who changed the gradebook.")


class CourseCsvExport(CsvExportPlugin):
    def export(self, gradebook) -> None:
        course = Path(getattr(getattr(self.parent, "coursedir", None), "root", "") or os.getcwd())
        labs = [a.name for a in gradebook.assignments]
        check_gradebook(course, labs)
        dest = Path(self.to or "grades.csv")
        super().export(gradebook)
        rows = list(csv.reader(io.StringIO(dest.read_text())))
        if not rows:
            return
        header, body = rows[0], rows[1:]
        a, s = header.index("assignment"), header.index("student_id")
        out = [header + ["status"]]
        for row in body:
            entry = ledger.read(course, row[a], row[s])
            if entry is None:
                status = "" if row[header.index("timestamp")] == "" else "graded"
            else:
                status = entry.status + (f" ({entry.decision})" if entry.decision else "")
            out.append(row + [status])
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(out)
        dest.write_text(buffer.getvalue())
