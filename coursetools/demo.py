"""``course demo``: the instructor workflow end to end on demo students.

``course demo`` runs in a scratch course of its own (a copy of this course's ``source/`` and
configuration; the course's gradebook is never touched) unless ``--dir`` names a course. There
it generates every lab, submits a reference solution (``demo-reference``) and an untouched
release notebook (``demo-blank``) for every lab, plus two broken lab-01 submissions that show
how grading copes (``demo-loops`` never finishes, ``demo-corrupt`` is not valid JSON). It
grades them with ``course grade`` (with limits; the heaviest lab in a second process beside the
others, so two cores are busy), generates feedback, exports grades and prints the score table.
A lab whose dataset is missing is skipped, saying how to get it; every point the reference
loses is explained beside the table.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from coursetools import bench
from coursetools import build as build_mod
from coursetools import grading, layout, nbgrader_ops, notebooks, students
from coursetools.grading.coordinator import usable_cores
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
    cores = usable_cores()
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


def plan_lanes(labs: list[str], cores: int | None = None) -> tuple[list[str], str | None]:
    """Which labs are graded here, in order, and which one (if any) beside them in a second
    process: the lab with the largest time budget, when more than one lab is graded and the
    machine has a core for it. Lab 08 alone takes about as long as the seven light labs."""
    if len(labs) < 2 or (cores or usable_cores()) < 2:
        return list(labs), None
    specs = bench.load_specs()
    heaviest = max(labs, key=lambda lab: specs.get(lab, {}).get("budget_seconds", 0))
    return [lab for lab in labs if lab != heaviest], heaviest


def grade_beside(course: Path, lab: str, limits: grading.Limits) -> tuple[subprocess.Popen, Path]:
    """Start ``course grade`` on the demo students of ``lab`` in a process of its own (one worker);
    its output goes to a log file in the course. The results are read from the grading ledger."""
    log = course / f"demo-{lab}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "coursetools.cli", "grade", lab, "--dir", str(course),
                                 "--students", f"{REFERENCE},{BLANK}", "--force", "--workers", "1",
                                 "--time-limit", f"{limits.time_limit:g}", "--memory-gb", f"{limits.memory_gb:g}"],
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def run_demo(course: Path, labs: list[str] | None = None, log=print, workers: int | None = None) -> DemoResult:
    """Generate and submit every lab, grade (the heaviest lab beside the others, see
    :func:`plan_lanes`), then write feedback and export grades; each step is logged with its lab."""
    if not (course / "source").is_dir():
        log(f"setting up a demo course in {course}")
        build_mod.scratch_course(layout.REPO_ROOT, course)
    labs = layout.select_labs(course, labs)
    outcome = DemoResult(course, [], [], course / "grades.csv")
    ready = []
    for lab in labs:
        dataset = bench.missing_data(lab)
        if dataset:
            outcome.skipped[lab] = data_fix(lab, dataset)
            log(f"[{lab}] SKIPPED: {outcome.skipped[lab]}")
            continue
        log(f"[{lab}] generate_assignment and submit the demo students")
        forget_demo_students(course, lab)
        nbgrader_ops.run(course, "generate_assignment", lab, "--force")
        submit_demo_students(course, lab, broken=not ready)
        ready.append(lab)

    here, beside = plan_lanes(ready)
    factor = slowdown()
    load_note = f", x{factor:.1f} for the machine load" if factor > 1 else ""
    if beside:
        limits = grading.Limits(time_limit=time_limit_for(beside, factor))
        beside_start = time.perf_counter()
        beside_proc, beside_log = grade_beside(course, beside, limits)
        log(f"[{beside}] grading beside the other labs (notebook time limit {limits.time_limit:.0f} s{load_note}; "
            f"log: {beside_log})")
    for lab in here:
        start = time.perf_counter()
        limits = grading.Limits(time_limit=time_limit_for(lab, factor))
        log(f"[{lab}] grade (notebook time limit {limits.time_limit:.0f} s{load_note})")
        outcome.results += grading.grade_lab(course, lab, [REFERENCE, BLANK], workers=1 if beside else workers,
                                             limits=limits, force=True, progress=False)
        if lab == ready[0]:
            short = grading.Limits(time_limit=BROKEN_TIME_LIMIT_S)
            log(f"[{lab}] grade the broken submissions (notebook time limit {short.time_limit:g} s)")
            outcome.results += grading.grade_lab(course, lab, [LOOPS, CORRUPT], workers=1 if beside else workers,
                                                 limits=short, force=True, progress=False)
        log(f"[{lab}] graded in {time.perf_counter() - start:.0f} s")
    if beside:
        if beside_proc.poll() is None:
            log(f"[{beside}] waiting for its grading to finish")
        if beside_proc.wait() != 0:
            raise RuntimeError(f"grading {beside} failed (exit {beside_proc.returncode}); see {beside_log}:\n"
                               + "\n".join(beside_log.read_text().splitlines()[-20:]))
        outcome.results += [grading.read_ledger(course, beside, s) for s in (REFERENCE, BLANK)]
        log(f"[{beside}] graded in {time.perf_counter() - beside_start:.0f} s (beside the others)")

    for lab in ready:
        log(f"[{lab}] generate_feedback")
        nbgrader_ops.run(course, "generate_feedback", lab, "--force")
        outcome.feedback += sorted((course / "feedback").glob(f"*/{lab}/*.html"))
    for r in outcome.results:
        if r.student == REFERENCE and r.status != grading.FAILED and r.score is not None \
                and r.max_score and r.score < r.max_score:
            outcome.explanations[(r.student, r.lab)] = lost_points(course, r)
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

