"""``course demo``: the instructor workflow end to end on two demo students.

In the course directory it generates every lab, submits a reference solution
(``demo-reference``) and an untouched release notebook (``demo-blank``), autogrades,
generates feedback, exports grades, and prints the score table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coursetools import build as build_mod
from coursetools import layout, nbgrader_ops, notebooks

REFERENCE, BLANK = "demo-reference", "demo-blank"


@dataclass
class DemoResult:
    course: Path
    rows: list[nbgrader_ops.LabScore]
    feedback: list[Path]
    grades_csv: Path


def submit_demo_students(course: Path, lab: str) -> None:
    """Reference and blank submissions for ``lab``, built from its release notebook."""
    release = notebooks.read(layout.notebook(course, "release", lab))
    source = notebooks.read(layout.notebook(course, "source", lab))
    notebooks.write_submission(course, REFERENCE, lab, notebooks.fill_solutions(release, source))
    notebooks.write_submission(course, BLANK, lab, release)


def run_demo(course: Path, labs: list[str] | None = None, log=print) -> DemoResult:
    if not (course / "source").is_dir():
        log(f"setting up a demo course in {course}")
        build_mod.scratch_course(layout.REPO_ROOT, course)
    labs = layout.select_labs(course, labs)
    rows, feedback = [], []
    for lab in labs:
        log(f"[{lab}] generate_assignment")
        nbgrader_ops.run(course, "generate_assignment", lab, "--force")
        submit_demo_students(course, lab)
        log(f"[{lab}] autograde ({REFERENCE}, {BLANK})")
        nbgrader_ops.run(course, "autograde", lab, "--force")
        log(f"[{lab}] generate_feedback")
        nbgrader_ops.run(course, "generate_feedback", lab, "--force")
        rows += nbgrader_ops.scores(course, lab)
        feedback += sorted((course / "feedback").glob(f"*/{lab}/*.html"))
    log("export grades")
    nbgrader_ops.run(course, "export")
    return DemoResult(course, rows, feedback, course / "grades.csv")


def format_table(rows: list[nbgrader_ops.LabScore]) -> str:
    """Students down, labs across, ``score/max`` in each cell, a total column."""
    students = sorted({r.student for r in rows})
    labs = sorted({r.lab for r in rows})
    by_key = {(r.student, r.lab): r for r in rows}
    header = ["student", *labs, "total"]
    lines = [header]
    for student in students:
        line, got, out_of = [student], 0.0, 0.0
        for lab in labs:
            row = by_key.get((student, lab))
            if row is None:
                line.append("-")
                continue
            line.append(f"{row.score:g}/{row.max_score:g}")
            got, out_of = got + row.score, out_of + row.max_score
        line.append(f"{got:g}/{out_of:g}")
        lines.append(line)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = ["  ".join(str(cell).ljust(w) for cell, w in zip(line, widths)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)
