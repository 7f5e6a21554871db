"""``course bench-grading``: how fast does ``course grade`` get through a class?

Generates a batch of submissions of one (light) lab, a mix of correct, wrong and broken ones,
grades it from scratch with each worker count, and reports submissions per minute, the
speed-up, and the per-submission overhead of the grading machinery (scratch courses,
nbgrader's preprocessors, gradebook merge) over plain execution of the same notebooks. With a
Dask scheduler, each local run is followed by the same on the cluster, and the overhead of
grading through Dask is reported per submission.
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


def _timed(tmp: Path, name: str, lab: str, n: int, slots: int, **grade_args) -> dict:
    """Grade a fresh class of ``n`` from scratch with ``slots`` workers: wall time, throughput,
    statuses, and the machinery's time per submission: the workers' time not spent grading a
    notebook (start-up, idling, scheduling, merging), which the machine's load moves far less
    than the grading itself."""
    course = tmp / name
    make_class(course, lab, n)
    start = time.perf_counter()
    results = grading.grade_lab(course, lab, progress=False, **grade_args)
    seconds = time.perf_counter() - start
    shutil.rmtree(course, ignore_errors=True)
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {"seconds": round(seconds, 1), "per_minute": round(60 * n / seconds, 1), "statuses": statuses,
            "machinery_per_submission": round((slots * seconds - sum(r.seconds for r in results)) / n, 2)}


def run(lab: str, n: int = 60, worker_counts: tuple[int, ...] = (1, 2), threads: int = 1, log=print,
        sandbox_overhead: bool = False, scheduler: str | None = None) -> dict:
    """Grade the generated class with each worker count, locally and, with ``scheduler``, right
    after on that Dask cluster's first as many workers (each starting without a scratch course,
    as a local pool does); report throughput, speed-up and overheads."""
    report = {"lab": lab, "submissions": n, "threads_per_kernel": threads, "runs": []}
    limits = grading.Limits(threads=threads)
    session = grading.connect_cluster(scheduler, limits) if scheduler else None
    try:
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
                run = {"workers": workers, **_timed(Path(tmp), f"w{workers}", lab, n, workers, workers=workers, limits=limits)}
                if workers == 1:
                    run["overhead_per_submission"] = round((run["seconds"] - plain_total) / n, 2)
                report["runs"].append(run)
                log(f"{workers} worker(s): {run['seconds']:.0f} s, {run['per_minute']} submissions/min, "
                    f"{run['statuses']}")
                if session is not None:
                    report.setdefault("cluster_runs", []).extend(_on_cluster(session, Path(tmp), lab, n, run, log))
            if sandbox_overhead:
                # The same class with one worker and no sandbox: what containment costs per submission.
                bare = _timed(Path(tmp), "unsandboxed", lab, n, 1, workers=1,
                              limits=grading.Limits(threads=threads, sandbox=False))["seconds"]
                with_sandbox = next((r["seconds"] for r in report["runs"] if r["workers"] == 1), None)
                report["unsandboxed_seconds"] = bare
                if with_sandbox is not None:
                    report["sandbox_overhead_per_submission"] = round((with_sandbox - bare) / n, 2)
                log(f"1 worker without the sandbox: {bare:.0f} s")
    finally:
        if session is not None:
            session.close()
    for runs in (report["runs"], report.get("cluster_runs", [])):
        for run in runs:
            run["speedup"] = round(runs[0]["seconds"] / run["seconds"], 2)
    return report


def _on_cluster(session, tmp: Path, lab: str, n: int, local: dict, log) -> list[dict]:
    """The class graded on the cluster's first ``local["workers"]`` workers, right after the
    local run with as many: the overhead per submission is the difference of their machinery."""
    from coursetools.grading import cluster

    workers, available = local["workers"], len(session.client.scheduler_info(n_workers=-1)["workers"])
    if workers > available:
        log(f"skipped Dask with {workers} worker(s): {available} connected")
        return []
    session.restrict(workers)
    session.client.run(cluster.drop_scratch)
    session.graded_by.clear()
    run = {"workers": workers, **_timed(tmp, f"dask{workers}", lab, n, workers, limits=session.limits,
                                        cluster=session)}
    run["per_worker"] = session.throughput(run["seconds"])
    run["overhead_per_submission"] = round(run["machinery_per_submission"] - local["machinery_per_submission"], 2)
    run["wall_difference_per_submission"] = round((run["seconds"] - local["seconds"]) / n, 2)
    log(f"Dask, {workers} worker(s): {run['seconds']:.0f} s, {run['per_minute']} submissions/min, {run['statuses']}")
    return [run]
