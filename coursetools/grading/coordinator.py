"""The coordinator of ``course grade``: who is graded, by which workers, and what is merged.

It checks the gradebook against the ledger, decides which submissions need grading (unchanged
ones are reused, a grader crash never is), warms the course data cache the sandboxes read,
runs a process pool of :mod:`worker` processes and merges each result as it completes
(:mod:`merge`). A pool broken by a dying worker is rebuilt and its in-flight submissions
requeued (a submission that breaks it three times fails with that reason). The run's scratch
root (``/tmp/grade-<lab>-<pid>-*``, mode 0700) is removed however the run ends, and roots left
by runs that were killed are removed at the next start.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from coursetools import nbgrader_ops
from coursetools.grading import export, ledger, merge, sandbox, submission, worker
from coursetools.grading.ledger import FAILED, Result
from coursetools.grading.worker import Limits

MAX_ATTEMPTS = 3


def find_students(course: Path, lab: str, wanted: list[str] | None = None) -> list[str]:
    folder = course / "submitted"
    present = sorted(p.parent.name for p in folder.glob(f"*/{lab}") if p.is_dir() and not p.is_symlink()) \
        if folder.is_dir() else []
    if wanted:
        missing = sorted(set(wanted) - set(present))
        if missing:
            raise SystemExit(f"no submission of {lab} for: {', '.join(missing)}")
        return [s for s in present if s in wanted]
    return present


def ensure_assignment(course: Path, lab: str) -> None:
    """The course gradebook must know the lab's cells before submissions are merged."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        try:
            assignment = gb.find_assignment(lab)
            if assignment.notebooks:
                return
        except MissingEntry:
            pass
    nbgrader_ops.run(course, "generate_assignment", lab, "--force")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(limits: Limits) -> int:
    """One worker per core, bounded by memory (each submission may use ``memory_gb``)."""
    cores = usable_cores()
    try:
        total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    except (ValueError, OSError):
        total_gb = limits.memory_gb * cores
    return max(1, min(cores, int((total_gb - 2) // limits.memory_gb)))


def containment(limits: Limits) -> tuple[bool, str]:
    """(sandbox used?, a phrase for the header line and the ledger)."""
    found = sandbox.probe() if limits.sandbox else sandbox.Availability(False, "no sandbox: turned off (--no-sandbox)")
    if found.ok:
        return True, found.how + ("; cgroup memory and pids limits" if sandbox.cgroups_available() else
                                  "; no cgroups (shared memory is not counted against the memory limit)")
    net = limits.isolate_network and worker.network_isolation_available()
    return False, found.how + ("; kernels only cut off from the network" if net else
                               "; kernels NOT isolated from the network")


def remove_stale_scratch(tmp: Path | None = None) -> None:
    """Scratch roots of runs that were killed (their coordinator's pid is gone)."""
    for folder in Path(tmp or tempfile.gettempdir()).glob("grade-*-*-*"):
        match = re.match(r"grade-.+-(\d+)-[^-]+$", folder.name)
        if match and folder.is_dir() and not Path(f"/proc/{match.group(1)}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def warm_data_cache(lab: str) -> None:
    """Decode the lab's dataset into the course cache on the trusted side: sandboxes see the
    cache read-only, so a cold cache would cost every kernel the decoding."""
    from coursetools import bench

    if bench.load_specs().get(lab, {}).get("needs_data") != "cifar10":
        return
    from helpers.data import cifar10_available, load_cifar10

    if cifar10_available():
        for train in (True, False):
            load_cifar10(train=train, download=False)


def grade_lab(course: Path, lab: str, students: list[str] | None = None, workers: int | None = None,
              limits: Limits | None = None, force: bool = False, progress: bool = True,
              cluster=None) -> list[Result]:
    """Grade every (or the named) submission of ``lab``; return one Result per student. With
    ``cluster`` (a connected :class:`cluster.Cluster`) the submissions are graded on its Dask
    workers instead of a local process pool; everything else is the same."""
    from coursetools import bench

    limits = limits or Limits()
    workers = workers or default_workers(limits)
    ensure_assignment(course, lab)
    everyone = find_students(course, lab, students)
    mismatched = {p.split(":")[0] for p in ledger.verify(course, lab)}
    if mismatched and not (force and mismatched <= set(everyone)):
        export.check_gradebook(course, [lab])  # raises, naming the students
    results, todo, previous_of = {}, [], {}
    for student in everyone:
        previous = previous_of[student] = ledger.read(course, lab, student)
        digest = submission.digest(course / "submitted" / student / lab)
        if not force and previous and previous.digest == digest and not previous.crashed:
            previous.reused = True
            results[student] = previous
        else:
            todo.append(student)
    if not todo:
        return [results[s] for s in everyone]

    use_sandbox, how = containment(limits) if cluster is None else (cluster.sandboxed, cluster.how)
    allowed = list(bench.load_specs().get(lab, {}).get("allowed_imports", []))
    remove_stale_scratch()
    if cluster is None:
        warm_data_cache(lab)  # Dask workers warm their own
    scratch_root = tempfile.mkdtemp(prefix=f"grade-{lab}-{os.getpid()}-")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"grading {lab}", unit="submission", file=sys.stderr)
    attempts: Counter = Counter()

    def finish(student: str, result: Result) -> None:
        _carry_decision(result, previous_of.get(student))
        merge.record(course, result)
        results[student] = result
        if bar:
            bar.update(1)
            bar.set_postfix_str(f"{student}: {result.status}")

    try:
        if cluster is not None:
            cluster.grade(course, lab, todo, limits, allowed, scratch_root, finish)
            todo = []  # every submission was merged by finish()
        while todo:  # the local process pool
            batch, todo = todo, []
            pool = ProcessPoolExecutor(max_workers=min(workers, len(batch)), initializer=worker.init,
                                       initargs=(str(course), lab, limits, scratch_root, use_sandbox, how,
                                                 limits.isolate_network, allowed))
            try:
                pending = {pool.submit(worker.grade, s): s for s in batch}
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        student = pending.pop(future)
                        try:
                            result = future.result()
                        except BrokenProcessPool:
                            attempts[student] += 1
                            if attempts[student] < MAX_ATTEMPTS:
                                todo.append(student)  # requeued on a fresh pool
                                continue
                            result = crashed(course, lab, student, f"a grading worker died {MAX_ATTEMPTS} times")
                        except Exception as exc:  # noqa: BLE001 - a worker error fails one submission
                            result = crashed(course, lab, student, f"{type(exc).__name__}: {exc}")
                        finish(student, result)
            except BaseException:
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.kill()  # their nbgrader children and sandboxes die with them
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
    finally:
        if bar:
            bar.close()
        shutil.rmtree(scratch_root, ignore_errors=True)
        sandbox.remove_cgroups(Path(scratch_root).name)
    return [results[s] for s in everyone]


def crashed(course: Path, lab: str, student: str, why: str) -> Result:
    """A Result for a submission the grader itself failed on (regraded by the next run)."""
    return Result(student, lab, FAILED, reason=f"grader crashed: {why}"[:200],
                  digest=submission.digest(course / "submitted" / student / lab))


def _carry_decision(result: Result, previous: Result | None) -> None:
    """An instructor's review decision stands while the submission is unchanged."""
    if previous and previous.decision and previous.digest == result.digest and result.status != FAILED:
        result.decision = previous.decision
        if result.decision == "zeroed":
            result.score = 0.0
        if result.status == ledger.REVIEW:
            result.status = ledger.GRADED


def format_results(results: list[Result]) -> str:
    from coursetools import table

    header = ["student", "lab", "score", "status"]
    rows = [[r.student, r.lab, "-" if r.score is None else f"{r.score:g}/{r.max_score:g}",
             r.status_text + (" [unchanged since last run]" if r.reused else "")] for r in results]
    return table.format_table(header, rows)
