"""``course demo``: the instructor workflow end to end on demo students.

In the course directory it generates every lab, submits a reference solution
(``demo-reference``) and an untouched release notebook (``demo-blank``) for every lab, plus
two broken lab-01 submissions that show how grading copes (``demo-loops`` never finishes,
``demo-corrupt`` is not valid JSON). It grades them with ``course grade`` (parallel, with
limits), generates feedback, exports grades and prints the score table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coursetools import bench
from coursetools import build as build_mod
from coursetools import grading, layout, nbgrader_ops, notebooks
from coursetools.table import format_table as _format

REFERENCE, BLANK, LOOPS, CORRUPT = "demo-reference", "demo-blank", "demo-loops", "demo-corrupt"
DEMO_STUDENTS = (REFERENCE, BLANK, LOOPS, CORRUPT)


@dataclass
class DemoResult:
    course: Path
    results: list[grading.Result]
    feedback: list[Path]
    grades_csv: Path


def submit_demo_students(course: Path, lab: str, broken: bool) -> None:
    """Reference and blank submissions for ``lab`` built from its release notebook; with
    ``broken``, also one that loops forever and one whose file is not a notebook."""
    release = notebooks.read(layout.notebook(course, "release", lab))
    source = notebooks.read(layout.notebook(course, "source", lab))
    notebooks.write_submission(course, REFERENCE, lab, notebooks.fill_solutions(release, source))
    notebooks.write_submission(course, BLANK, lab, release)
    if broken:
        first = next(iter(notebooks.solution_cells(release)))
        looping = notebooks.fill_solutions(release, source, {first: "while True:\n    pass"})
        notebooks.write_submission(course, LOOPS, lab, looping)
        folder = notebooks.write_submission(course, CORRUPT, lab, release)
        (folder / f"{lab}.ipynb").write_text('{"cells": [{"cell_type": "code", "source": "print(')


def forget_demo_students(course: Path, lab: str) -> None:
    """Remove earlier demo submissions of ``lab`` from the gradebook: nbgrader will not
    regenerate a lab whose cells changed while it holds submissions. Real students' work is
    never touched."""
    for student in DEMO_STUDENTS:
        grading.remove_from_gradebook(course, lab, student)


def time_limit_for(lab: str) -> float:
    """A demo-sized notebook time limit: twice the lab's budget (at least 60 s)."""
    budget = bench.load_specs().get(lab, {}).get("budget_seconds", 900)
    return max(60.0, 2.0 * budget)


def run_demo(course: Path, labs: list[str] | None = None, log=print, workers: int | None = None) -> DemoResult:
    if not (course / "source").is_dir():
        log(f"setting up a demo course in {course}")
        build_mod.scratch_course(layout.REPO_ROOT, course)
    labs = layout.select_labs(course, labs)
    results, feedback = [], []
    for i, lab in enumerate(labs):
        log(f"[{lab}] generate_assignment")
        forget_demo_students(course, lab)
        nbgrader_ops.run(course, "generate_assignment", lab, "--force")
        submit_demo_students(course, lab, broken=(i == 0))
        limits = grading.Limits(time_limit=time_limit_for(lab))
        log(f"[{lab}] grade (notebook time limit {limits.time_limit:g} s)")
        results += grading.grade_lab(course, lab, workers=workers, limits=limits, force=True, progress=False)
        log(f"[{lab}] generate_feedback")
        nbgrader_ops.run(course, "generate_feedback", lab, "--force")
        feedback += sorted((course / "feedback").glob(f"*/{lab}/*.html"))
    log("export grades")
    nbgrader_ops.run(course, "export")
    return DemoResult(course, results, feedback, course / "grades.csv")


def format_table(results: list[grading.Result]) -> str:
    """Students down, labs across, ``score/max`` (or FAILED) in each cell, a total column,
    then what happened to every submission that was not graded cleanly."""
    students = sorted({r.student for r in results})
    labs = sorted({r.lab for r in results})
    by_key = {(r.student, r.lab): r for r in results}
    header = ["student", *labs, "total"]
    lines = [header]
    for student in students:
        line, got, out_of = [student], 0.0, 0.0
        for lab in labs:
            r = by_key.get((student, lab))
            if r is None:
                line.append("-")
            elif r.status == grading.FAILED:
                line.append("FAILED")
            else:
                line.append(f"{r.score:g}/{r.max_score:g}")
                got, out_of = got + r.score, out_of + r.max_score
        line.append(f"{got:g}/{out_of:g}")
        lines.append(line)
    text = [_format(header, lines[1:])]
    remarks = [f"  {r.student} / {r.lab}: {r.status_text}" for r in results
               if r.status != grading.GRADED or r.notes or r.review]
    if remarks:
        text += ["", "status:"] + remarks
    return "\n".join(text)
