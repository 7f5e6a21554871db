"""``course report LAB --bench N``: how long does the report take for a class of N?

Builds a synthetic graded class in a scratch course (no kernels: gradebook rows through
nbgrader's Gradebook API, ledger entries, and autograded notebooks made from the lab's
notebooks with plot-sized outputs and IPython-style error tracebacks on failed test cells),
then times ``course report`` on it in a fresh process, imports included, as an instructor
would run it: wall time, and CPU time (which a machine busy with other work inflates less).
Building the class is not timed.
"""
from __future__ import annotations

import base64
import copy
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path

from coursetools import build, layout, nbgrader_ops
from coursetools.report import failures

PLOT_BYTES = 30_000  # a typical matplotlib PNG in an executed lab notebook (base64: 40 KB)

_MESSAGES = [  # (ename, template): numbers vary between students, the words do not
    ("CheckFailed", "{name} has shape ({a},); expected ({a}, 1). Hint: one label per row, as a column."),
    ("CheckFailed", "{name} is {x:.4f}; expected at least 0.9. Hint: train longer or with a larger learning rate."),
    ("AssertionError", "the final loss is {x:.3f}; it should fall well below 0.2."),
    ("NameError", "name '{name}' is not defined"),
]


def ipython_traceback(ename: str, evalue: str, source: str, line: int, count: int = 7) -> list[str]:
    """An error output's traceback as IPython 9 writes it: coloured, the cell frame with two
    lines of context either side of the failing line (hidden tests included, as in real
    tracebacks), then one library frame."""
    red, green, cyan, reset = "\x1b[31m", "\x1b[32m", "\x1b[36m", "\x1b[39m"
    lines = source.splitlines()
    context = []
    for number in range(max(1, line - 2), min(len(lines), line + 2) + 1):
        arrow = "----> " if number == line else "      "
        context.append(f"{green}{arrow}{reset}{green}{number}{reset} {lines[number - 1]}")
    return [
        f"{red}{'-' * 75}{reset}",
        f"{red}{ename}{reset}{' ' * max(1, 42 - len(ename))}Traceback (most recent call last)",
        f"{cyan}Cell{reset}{cyan} {reset}{green}In[{count}]{reset}{green}, line {line}{reset}\n" + "\n".join(context) + "\n",
        f"{cyan}File {reset}{green}/srv/course/helpers/checks.py:55{reset}, in {cyan}_fail{reset}(message, hint)\n"
        f"{green}---> {reset}{green}55{reset}     raise CheckFailed(message)\n",
        f"{red}{ename}{reset}: {evalue}",
    ]


def make_class(course: Path, lab: str, n: int, seed: int = 0, pass_rate: float = 0.7) -> None:
    """Write a graded class of ``n`` students of ``lab`` into a fresh scratch ``course``."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    build.scratch_course(layout.REPO_ROOT, course)
    nbgrader_ops.run(course, "generate_assignment", lab, "--force")
    rng = random.Random(seed)
    release = json.loads(layout.notebook(course, "release", lab).read_text())
    source = json.loads(layout.notebook(course, "source", lab).read_text())
    tests = {_gid(c): "".join(c["source"]) for c in source["cells"] if _meta(c).get("grade")}
    points = {_gid(c): float(_meta(c).get("points", 0)) for c in release["cells"] if _meta(c).get("grade")}
    plot = {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(rng.randbytes(PLOT_BYTES)).decode(), "text/plain": "<Figure>"}}
    due = datetime(2026, 3, 1, 12, 0)
    with warnings.catch_warnings(), Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_assignment(lab, duedate=due)
        for i in range(n):
            student = f"s{i:03d}"
            stamp = due + timedelta(hours=rng.uniform(-96, 12))
            nb = copy.deepcopy(release)
            cells = {}
            for count, cell in enumerate(nb["cells"], start=1):
                if cell["cell_type"] != "code":
                    continue
                cell["execution_count"] = count
                gid = _gid(cell)
                if gid in tests:
                    cell["source"] = tests[gid]
                    cell["outputs"] = []
                    cells[gid] = points[gid]
                    if rng.random() > pass_rate:
                        cells[gid] = 0.0
                        cell["outputs"] = [_error(rng, tests[gid], count)]
                elif not _meta(cell).get("solution") and rng.random() < 0.5:
                    cell["outputs"] = [plot]
            folder = course / "autograded" / student / lab
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{lab}.ipynb").write_text(json.dumps(nb))
            gb.update_or_create_student(student)
            submission = gb.update_or_create_submission(lab, student, timestamp=stamp)
            for submitted in submission.notebooks:
                for grade in submitted.grades:
                    grade.auto_score = cells.get(grade.name, 0.0)
                    grade.needs_manual_grade = False
            _ledger(course, lab, student, cells, stamp, rng)
        gb.db.commit()


def _error(rng: random.Random, source: str, count: int) -> dict:
    hidden = sorted(failures.hidden_lines(source))
    visible = [i for i, text in enumerate(source.splitlines(), start=1)
               if i not in hidden and text.strip() and not text.startswith((" ", "#"))]
    body = [i for i in hidden if "HIDDEN TESTS" not in source.splitlines()[i - 1]]
    line = rng.choice(body) if body and rng.random() < 0.3 else rng.choice(visible or [1])
    ename, template = rng.choice(_MESSAGES)
    evalue = template.format(name=rng.choice(["X", "y", "model"]), a=rng.randint(2, 400), x=rng.random())
    return {"output_type": "error", "ename": ename, "evalue": evalue,
            "traceback": ipython_traceback(ename, evalue, source, line, count)}


def _ledger(course: Path, lab: str, student: str, cells: dict, stamp: datetime, rng: random.Random) -> None:
    status = rng.choices(["graded", "needs review"], [0.95, 0.05])[0]
    entry = {"student": student, "lab": lab, "status": status, "reason": "", "notes": [],
             "review": ["score differs from the last run"] if status == "needs review" else [],
             "score": sum(cells.values()), "max_score": None, "cells": {g: [v, None] for g, v in cells.items()},
             "timestamp": stamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC"), "seconds": round(rng.uniform(8, 40), 1),
             "digest": f"{rng.getrandbits(64):016x}"}
    path = course / "grading" / lab / f"{student}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry))


def _meta(cell: dict) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def _gid(cell: dict) -> str | None:
    return _meta(cell).get("grade_id")


def run(lab: str, n: int, repeat: int = 2) -> dict:
    """Build a class of ``n`` and time ``course report`` on it (a fresh process each time)."""
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        course = Path(tmp) / "course"
        start = time.perf_counter()
        make_class(course, lab, n)
        built = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (course / "autograded").rglob("*.ipynb"))
        times, cpu = [], []
        for _ in range(repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "coursetools.cli", "report", lab, "--dir", str(course),
                            "--out", str(Path(tmp) / "reports")], check=True, capture_output=True)
            times.append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            # CPU time is what a busy machine cannot inflate much (wall time waits for the CPU)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        # the same run in this process, split into its parts (imports already paid)
        parts = profile_parts(course, lab, Path(tmp) / "reports-2")
    return {"lab": lab, "submissions": n, "notebooks_mb": round(size / 1e6, 1), "build_seconds": round(built, 1),
            "report_seconds": [round(t, 2) for t in times], "report_cpu_seconds": [round(t, 2) for t in cpu],
            "parts": parts}


def profile_parts(course: Path, lab: str, out: Path) -> dict:
    """Seconds spent reading (gradebook, ledger, notebooks) and writing (tables, figures, HTML),
    once every import is paid."""
    from coursetools.report import collect, write_lab

    write_lab(course, collect.collect(course, lab), out / "warm-up")
    start = time.perf_counter()
    data = collect.collect(course, lab)
    read = time.perf_counter() - start
    start = time.perf_counter()
    write_lab(course, data, out)
    return {"read": round(read, 2), "write": round(time.perf_counter() - start, 2)}
