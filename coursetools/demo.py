"""``course demo``: the instructor workflow end to end on demo students.

``course demo`` runs in a scratch course of its own (a copy of this course's ``source/`` and
configuration; the course's gradebook is never touched) unless ``--dir`` names a course. There
it generates every lab, submits a reference solution (``demo-reference``) and an untouched
release notebook (``demo-blank``) for every lab, plus two broken lab-01 submissions that show
how grading copes (``demo-loops`` never finishes, ``demo-corrupt`` is not valid JSON). It
grades them with ``course grade`` (parallel, with limits), generates feedback, exports grades
and prints the score table. A lab whose dataset is missing is skipped, saying how to get it;
every point the reference loses is explained beside the table.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from coursetools import bench
from coursetools import build as build_mod
from coursetools import grading, layout, nbgrader_ops, notebooks, students
from coursetools.table import format_table as _format

REFERENCE, BLANK, LOOPS, CORRUPT = "demo-reference", "demo-blank", "demo-loops", "demo-corrupt"
DEMO_STUDENTS = (REFERENCE, BLANK, LOOPS, CORRUPT)
# Names for Formgrader (nbgrader shows "None, None" without them).
DEMO_NAMES = {student: {"first_name": student.split("-")[1].capitalize(), "last_name": "Demo"}
              for student in DEMO_STUDENTS}
# Generous notebook time limits, multiplied by the measured slowdown: a busy machine must not
# fail the reference. The broken submissions get a short one: they fail whatever the limit.
MIN_TIME_LIMIT_S, BUDGET_FACTOR, BROKEN_TIME_LIMIT_S = 120.0, 3.0, 20.0


@dataclass
class DemoResult:
    course: Path
    results: list[grading.Result]
    feedback: list[Path]
    grades_csv: Path
    skipped: dict[str, str] = field(default_factory=dict)        # lab -> why, and the fix
    explanations: dict[tuple[str, str], str] = field(default_factory=dict)  # (student, lab) -> lost points


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
    """Remove earlier demo submissions of ``lab`` (nbgrader will not regenerate a lab whose
    cells changed while it holds submissions). Real students' work is never touched."""
    for student in DEMO_STUDENTS:
        students.remove_student(course, student, [lab])


def slowdown() -> float:
    """How much slower than an idle machine this one runs now: the load average per core
    (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return max(1.0, load / cores)


def time_limit_for(lab: str, factor: float = 1.0) -> float:
    """A demo notebook time limit: three times the lab's budget (at least 120 s), times ``factor``."""
    budget = bench.load_specs().get(lab, {}).get("budget_seconds", 900)
    return max(MIN_TIME_LIMIT_S, BUDGET_FACTOR * budget) * factor


def data_fix(lab: str, dataset: str) -> str:
    """Why ``lab`` cannot be graded here, and exactly how to fix it."""
    from helpers.data import DATA_DIR_ENV, course_data_dir

    unset = "" if os.environ.get(DATA_DIR_ENV) else f" (${DATA_DIR_ENV} is not set)"
    return (f"needs {dataset}, which is not in the course data directory {course_data_dir()}{unset}. "
            f"Either export {DATA_DIR_ENV}=/path/to/folder (holding cifar-10-batches-py/, or "
            f"cifar10/train/<class>/ and cifar10/test/<class>/), or, with internet access, download it "
            f"once (170 MB): {sys.executable} -c \"from helpers.data import load_cifar10; load_cifar10()\". "
            f"Then: course demo {lab}")


def lost_points(course: Path, result: grading.Result) -> str:
    """What a graded submission lost its points on: each failing cell and its message."""
    from coursetools.feedback import failure_message

    lost = [gid for gid, (score, top) in sorted(result.cells.items()) if top and (score or 0) < top]
    if not lost:
        return ""
    path = layout.notebook(course, "autograded", result.lab, student=result.student)
    try:
        cells = notebooks.graded_cells(notebooks.read(path))
    except (OSError, ValueError):
        cells = {}
    reasons = []
    for gid in lost:
        message = failure_message(cells[gid]) if gid in cells else ""
        first = message.splitlines()[0][:200] if message else "no error recorded (see its feedback page)"
        reasons.append(f"{gid}: {first}")
    return (f"lost {result.max_score - result.score:g} of {result.max_score:g} points: " + "; ".join(reasons))


def run_demo(course: Path, labs: list[str] | None = None, log=print, workers: int | None = None) -> DemoResult:
    if not (course / "source").is_dir():
        log(f"setting up a demo course in {course}")
        build_mod.scratch_course(layout.REPO_ROOT, course)
    labs = layout.select_labs(course, labs)
    outcome = DemoResult(course, [], [], course / "grades.csv")
    broken_done = False
    for lab in labs:
        dataset = bench.missing_data(lab)
        if dataset:
            outcome.skipped[lab] = data_fix(lab, dataset)
            log(f"[{lab}] SKIPPED: {outcome.skipped[lab]}")
            continue
        start = time.perf_counter()
        log(f"[{lab}] generate_assignment")
        forget_demo_students(course, lab)
        nbgrader_ops.run(course, "generate_assignment", lab, "--force")
        submit_demo_students(course, lab, broken=not broken_done)
        factor = slowdown()
        limits = grading.Limits(time_limit=time_limit_for(lab, factor))
        log(f"[{lab}] grade (notebook time limit {limits.time_limit:.0f} s"
            f"{f', x{factor:.1f} for the machine load' if factor > 1 else ''})")
        results = grading.grade_lab(course, lab, [REFERENCE, BLANK], workers=workers, limits=limits,
                                    force=True, progress=False)
        if not broken_done:
            short = grading.Limits(time_limit=BROKEN_TIME_LIMIT_S)
            log(f"[{lab}] grade the broken submissions (notebook time limit {short.time_limit:g} s)")
            results += grading.grade_lab(course, lab, [LOOPS, CORRUPT], workers=workers, limits=short,
                                         force=True, progress=False)
            broken_done = True
        log(f"[{lab}] generate_feedback")
        nbgrader_ops.run(course, "generate_feedback", lab, "--force")
        outcome.feedback += sorted((course / "feedback").glob(f"*/{lab}/*.html"))
        for r in results:
            if r.student == REFERENCE and r.status != grading.FAILED and r.score is not None \
                    and r.max_score and r.score < r.max_score:
                outcome.explanations[(r.student, lab)] = lost_points(course, r)
        outcome.results += results
        log(f"[{lab}] done in {time.perf_counter() - start:.0f} s")
    students.name_students(course, DEMO_NAMES)
    if outcome.results:
        log("export grades")
        nbgrader_ops.run(course, "export")
    return outcome


def format_table(results: list[grading.Result], explanations: dict[tuple[str, str], str] | None = None,
                 skipped: dict[str, str] | None = None) -> str:
    """Students down, labs across, ``score/max`` (or FAILED) in each cell, a total column,
    then what happened to every submission that was not graded cleanly, why the reference lost
    any points, and which labs were skipped and why."""
    explanations = explanations or {}
    students_ = sorted({r.student for r in results})
    labs = sorted({r.lab for r in results})
    by_key = {(r.student, r.lab): r for r in results}
    header = ["student", *labs, "total"]
    lines = []
    for student in students_:
        line, got, out_of = [student], 0.0, 0.0
        for lab in labs:
            r = by_key.get((student, lab))
            if r is None:
                line.append("-")
            elif r.status == grading.FAILED:
                line.append("FAILED")
            else:
                line.append(f"{r.score:g}/{r.max_score:g}" + (" *" if (student, lab) in explanations else ""))
                got, out_of = got + r.score, out_of + r.max_score
        line.append(f"{got:g}/{out_of:g}")
        lines.append(line)
    text = [_format(header, lines)] if results else ["no lab was graded"]
    remarks = [f"  {r.student} / {r.lab}: {r.status_text}" for r in results
               if r.status != grading.GRADED or r.notes or r.review]
    remarks += [f"  * {student} / {lab}: {why}" for (student, lab), why in sorted(explanations.items())]
    if remarks:
        text += ["", "status:"] + remarks
    if skipped:
        text += ["", "skipped:"] + [f"  {lab}: {why}" for lab, why in skipped.items()]
    return "\n".join(text)

