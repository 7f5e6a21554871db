"""``course bench-grading``: how fast does ``course grade`` get through a class?

Generates a batch of submissions of one (light) lab, a mix of correct, wrong and broken ones,
grades it from scratch with each worker count, and reports submissions per minute, the
speed-up, and the per-submission overhead of the grading machinery (scratch courses,
nbgrader's preprocessors, gradebook merge) over plain execution of the same notebooks.
"""
from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

from nbclient import NotebookClient

from coursetools import build, grading, layout, nbgrader_ops, notebooks

# kind -> share of the batch
MIX = {"correct": 0.5, "wrong": 0.2, "blank": 0.1, "invalid-json": 0.1, "no-timestamp": 0.1}


def make_class(course: Path, lab: str, n: int) -> dict[str, str]:
    """Write ``n`` submissions into a fresh scratch course; return student -> kind."""
    build.scratch_course(layout.REPO_ROOT, course)
    nbgrader_ops.run(course, "generate_assignment", lab, "--force")
    release = notebooks.read(layout.notebook(course, "release", lab))
    source = notebooks.read(layout.notebook(course, "source", lab))
    reference = notebooks.fill_solutions(release, source)
    last = list(notebooks.solution_cells(release))[-1]
    wrong = notebooks.fill_solutions(release, source, {last: "raise ValueError('wrong answer')"})
    kinds, counts = {}, {k: round(share * n) for k, share in MIX.items()}
    counts["correct"] += n - sum(counts.values())
    i = 0
    for kind, count in counts.items():
        for _ in range(count):
            student = f"s{i:03d}-{kind}"
            nb = {"correct": reference, "wrong": wrong, "blank": release}.get(kind, reference)
            folder = notebooks.write_submission(course, student, lab, nb)
            if kind == "invalid-json":
                (folder / f"{lab}.ipynb").write_text("{ truncated")
            if kind == "no-timestamp":
                (folder / "timestamp.txt").unlink()
            kinds[student] = kind
            i += 1
    return kinds


def plain_seconds(course: Path, lab: str, student: str, repeats: int = 3) -> float:
    """Median wall time of executing a submission with nbclient alone (no nbgrader)."""
    times = []
    for _ in range(repeats):
        nb = notebooks.read(layout.notebook(course, "submitted", lab, student=student))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                           config=notebooks.kernel_config(), resources={"metadata": {"path": tmp}}).execute()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(lab: str, n: int = 60, worker_counts: tuple[int, ...] = (1, 2), threads: int = 1, log=print,
        sandbox_overhead: bool = False) -> dict:
    report = {"lab": lab, "submissions": n, "threads_per_kernel": threads, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        probe = Path(tmp) / "probe"
        kinds = make_class(probe, lab, n)
        plain = {}
        for kind in ("correct", "wrong", "blank"):
            student = next((s for s, k in kinds.items() if k == kind), None)
            if student:
                plain[kind] = plain_seconds(probe, lab, student)
        plain_total = sum(plain.get({"no-timestamp": "correct"}.get(k, k), 0.0) for k in kinds.values())
        report["plain_seconds"] = {k: round(v, 2) for k, v in plain.items()}
        log(f"plain execution (median of 3): " + ", ".join(f"{k} {v:.1f} s" for k, v in plain.items()))
        for workers in worker_counts:
            course = Path(tmp) / f"w{workers}"
            make_class(course, lab, n)
            start = time.perf_counter()
            results = grading.grade_lab(course, lab, workers=workers, limits=grading.Limits(threads=threads),
                                        progress=False)
            seconds = time.perf_counter() - start
            statuses = {}
            for r in results:
                statuses[r.status] = statuses.get(r.status, 0) + 1
            run = {"workers": workers, "seconds": round(seconds, 1),
                   "per_minute": round(60 * n / seconds, 1), "statuses": statuses}
            if workers == 1:
                run["overhead_per_submission"] = round((seconds - plain_total) / n, 2)
            report["runs"].append(run)
            log(f"{workers} worker(s): {seconds:.0f} s, {run['per_minute']} submissions/min, {statuses}")
            shutil.rmtree(course, ignore_errors=True)
        if sandbox_overhead:
            # The same class with one worker and no sandbox: what containment costs per submission.
            course = Path(tmp) / "unsandboxed"
            make_class(course, lab, n)
            start = time.perf_counter()
            grading.grade_lab(course, lab, workers=1, limits=grading.Limits(threads=threads, sandbox=False),
                              progress=False)
            bare = time.perf_counter() - start
            with_sandbox = next((r["seconds"] for r in report["runs"] if r["workers"] == 1), None)
            report["unsandboxed_seconds"] = round(bare, 1)
            if with_sandbox is not None:
                report["sandbox_overhead_per_submission"] = round((with_sandbox - bare) / n, 2)
            log(f"1 worker without the sandbox: {bare:.0f} s")
    base = report["runs"][0]["seconds"]
    for run in report["runs"]:
        run["speedup"] = round(base / run["seconds"], 2)
    return report
