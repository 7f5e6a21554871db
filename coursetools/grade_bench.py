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


def _timed(tmp: Path, name: str, lab: str, n: int, **grade_args) -> tuple[float, dict]:
    """Grade a fresh class of ``n`` from scratch: (seconds, statuses)."""
    course = tmp / name
    make_class(course, lab, n)
    start = time.perf_counter()
    results = grading.grade_lab(course, lab, progress=False, **grade_args)
    seconds = time.perf_counter() - start
    shutil.rmtree(course, ignore_errors=True)
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return seconds, statuses


def run(lab: str, n: int = 60, worker_counts: tuple[int, ...] = (1, 2), threads: int = 1, log=print,
        sandbox_overhead: bool = False, scheduler: str | None = None) -> dict:
    """Grade the generated class locally with each worker count (and, with ``scheduler``, on
    that Dask cluster's first 1, 2, ... workers, each starting without a scratch course as a
    local pool does); report throughput, speed-up and overheads."""
    report = {"lab": lab, "submissions": n, "threads_per_kernel": threads, "runs": []}
    limits = grading.Limits(threads=threads)
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
            seconds, statuses = _timed(Path(tmp), f"w{workers}", lab, n, workers=workers, limits=limits)
            run = {"workers": workers, "seconds": round(seconds, 1),
                   "per_minute": round(60 * n / seconds, 1), "statuses": statuses}
            if workers == 1:
                run["overhead_per_submission"] = round((seconds - plain_total) / n, 2)
            report["runs"].append(run)
            log(f"{workers} worker(s): {seconds:.0f} s, {run['per_minute']} submissions/min, {statuses}")
        if sandbox_overhead:
            # The same class with one worker and no sandbox: what containment costs per submission.
            bare, _ = _timed(Path(tmp), "unsandboxed", lab, n, workers=1,
                             limits=grading.Limits(threads=threads, sandbox=False))
            with_sandbox = next((r["seconds"] for r in report["runs"] if r["workers"] == 1), None)
            report["unsandboxed_seconds"] = round(bare, 1)
            if with_sandbox is not None:
                report["sandbox_overhead_per_submission"] = round((with_sandbox - bare) / n, 2)
            log(f"1 worker without the sandbox: {bare:.0f} s")
        if scheduler:
            report["cluster_runs"] = _cluster_runs(Path(tmp), lab, n, worker_counts, limits, scheduler,
                                                   report["runs"], log)
    for runs in (report["runs"], report.get("cluster_runs", [])):
        for run in runs:
            run["speedup"] = round(runs[0]["seconds"] / run["seconds"], 2)
    return report


def _cluster_runs(tmp: Path, lab: str, n: int, worker_counts: tuple[int, ...], limits, scheduler: str,
                  local_runs: list[dict], log) -> list[dict]:
    """The class graded on the cluster's first k workers for each k; the overhead per submission
    is measured against the local run with as many workers."""
    from coursetools.grading import cluster

    session = grading.connect_cluster(scheduler, limits)
    runs = []
    try:
        available = len(session.worker_threads())
        for workers in worker_counts:
            if workers > available:
                log(f"skipped the cluster with {workers} worker(s): only {available} connected")
                continue
            session.restrict(workers)
            session.client.run(cluster.drop_scratch)
            session.graded_by.clear()
            seconds, statuses = _timed(tmp, f"dask{workers}", lab, n, limits=limits, cluster=session)
            run = {"workers": workers, "seconds": round(seconds, 1), "per_minute": round(60 * n / seconds, 1),
                   "statuses": statuses, "per_worker": session.throughput(seconds)}
            local = next((r for r in local_runs if r["workers"] == workers), None)
            if local:
                run["overhead_per_submission"] = round((seconds - local["seconds"]) / n, 2)
            runs.append(run)
            log(f"Dask, {workers} worker(s): {seconds:.0f} s, {run['per_minute']} submissions/min, {statuses}")
    finally:
        session.close()
    return runs
