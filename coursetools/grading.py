"""``course grade``: autograde a whole class with nbgrader, in parallel, robustly.

nbgrader grades one submission after another and one bad notebook can abort its batch. Here
every submission is graded by its own ``nbgrader autograde --student`` process inside a
worker's scratch course directory (with a private SQLite gradebook), under a wall-clock
limit, a memory limit and, where the platform allows, without network. The coordinator (the
only process that writes to the course's gradebook, so SQLite needs no concurrent writers)
merges each finished submission through nbgrader's Gradebook API, moves its autograded copy
into ``autograded/`` and records the outcome in ``grading/<lab>/<student>.json``.

Order per submission: autograded copy (atomic rename) -> gradebook (one transaction) ->
ledger (atomic write). A run killed at any point leaves complete submissions only; the next
run regrades whatever has no ledger entry matching the submission's current content.
The original files in ``submitted/`` are never modified.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import nbformat

from coursetools import build, layout, nbgrader_ops, notebooks, table

GRADED, FAILED, SKIPPED = "graded", "failed", "skipped"
LEDGER_DIR = "grading"


@dataclass
class Limits:
    """Per-submission limits. ``time_limit``: seconds for the whole notebook (the per-cell
    timeout comes from nbgrader_config.py); ``memory_gb``: address space for data (the
    kernel's allocations fail beyond it); ``threads``: intra-op threads per kernel;
    ``isolate_network``: run kernels in an empty network namespace when possible."""
    time_limit: float = 1800.0
    memory_gb: float = 6.0
    threads: int = 1
    isolate_network: bool = True


@dataclass
class Result:
    student: str
    lab: str
    status: str                                   # graded | failed | skipped
    reason: str = ""                              # why it failed (failed only)
    notes: list[str] = field(default_factory=list)  # what was noticed or repaired
    score: float | None = None
    max_score: float | None = None
    cells: dict[str, list[float]] = field(default_factory=dict)
    timestamp: str | None = None
    seconds: float = 0.0
    digest: str = ""
    autograded_dir: str = ""                      # scratch copy, moved by the coordinator
    reused: bool = False                          # taken from the ledger, not regraded

    @property
    def status_text(self) -> str:
        if self.status == FAILED:
            return f"failed: {self.reason}"
        return self.status + (f" ({'; '.join(self.notes)})" if self.notes else "")


class SubmissionProblem(Exception):
    """The submission cannot be graded; the message is the status reason."""


# ---------------------------------------------------------------- inspecting a submission

def submission_digest(folder: Path) -> str:
    """Hash of every file in a submission folder: a changed resubmission is regraded."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def read_timestamp(folder: Path, notes: list[str]) -> str | None:
    """The submission time, or None with a note when timestamp.txt is missing or malformed."""
    path = folder / "timestamp.txt"
    if not path.is_file():
        notes.append("no timestamp.txt (lateness unknown)")
        return None
    text = path.read_text(errors="replace").strip()
    try:
        datetime.strptime(text, notebooks.TIMESTAMP_FORMAT)
    except ValueError:
        try:
            from dateutil.parser import parse

            parse(text)
        except (ValueError, OverflowError):
            notes.append(f"malformed timestamp.txt {text[:40]!r} ignored (lateness unknown)")
            return None
    return text


def prepare_submission(course: Path, scratch: Path, lab: str, student: str) -> tuple[list[str], str | None]:
    """Copy ``submitted/<student>/<lab>`` into the scratch course, repairing what nbgrader
    would choke on (never the original). Returns notes and the usable timestamp; raises
    SubmissionProblem when there is nothing gradable."""
    original = course / "submitted" / student / lab
    target = scratch / "submitted" / student / lab
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(original, target)
    notes: list[str] = []
    expected = target / f"{lab}.ipynb"
    if not expected.is_file():
        others = sorted(p for p in target.glob("*.ipynb"))
        if len(others) == 1:
            notes.append(f"notebook was renamed to {others[0].name}; graded it as {expected.name}")
            others[0].rename(expected)
        elif others:
            raise SubmissionProblem(f"missing notebook {expected.name} (found {', '.join(p.name for p in others)})")
        else:
            raise SubmissionProblem(f"missing notebook {expected.name} (no notebook submitted)")
    try:
        nb = nbformat.read(str(expected), as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook gets the same status
        raise SubmissionProblem(f"invalid notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})") from None
    if not isinstance(nb.get("cells"), list):
        raise SubmissionProblem("invalid notebook (no cell list)")

    release = notebooks.read(layout.notebook(course, "release", lab))
    nb, repaired = repair_cells(nb, release)
    notes += repaired
    nbformat.write(nb, str(expected))

    timestamp = read_timestamp(target, notes)
    if timestamp is None:
        (target / "timestamp.txt").unlink(missing_ok=True)
    return notes, timestamp


def repair_cells(nb, release) -> tuple[object, list[str]]:
    """Compare the submission's nbgrader cells with the release: drop duplicated ones (keep
    the first), and note deleted, re-typed and edited read-only cells (nbgrader restores
    edited/re-typed cells from the gradebook; a deleted test cell scores 0)."""
    notes = []
    released = {notebooks.nbgrader_meta(c)["grade_id"]: c for c in release.cells
                if notebooks.nbgrader_meta(c).get("grade_id")}
    seen, kept, duplicated = set(), [], []
    for cell in nb.cells:
        grade_id = notebooks.nbgrader_meta(cell).get("grade_id")
        if grade_id in released:
            if grade_id in seen:
                duplicated.append(grade_id)
                continue
            seen.add(grade_id)
        kept.append(cell)
    nb.cells = kept
    if duplicated:
        notes.append(f"duplicated cells removed: {', '.join(sorted(set(duplicated)))}")
    deleted = [g for g, c in released.items() if g not in seen and notebooks.nbgrader_meta(c).get("grade")]
    if deleted:
        notes.append(f"graded cells deleted (scored 0): {', '.join(deleted)}")
    by_id = {notebooks.nbgrader_meta(c).get("grade_id"): c for c in nb.cells}
    retyped = [g for g in seen if by_id[g].cell_type != released[g].cell_type]
    if retyped:
        notes.append(f"cell type changed (restored): {', '.join(sorted(retyped))}")
    edited = [g for g in seen if g not in retyped and notebooks.nbgrader_meta(released[g]).get("locked")
              and by_id[g].source.strip() != released[g].source.strip()]
    if edited:
        notes.append(f"read-only cells edited (restored): {', '.join(sorted(edited))}")
    return nb, notes


def scan_outputs(nb_path: Path) -> list[str]:
    """Notes on what happened while executing: cells interrupted by the per-cell timeout,
    allocations refused by the memory limit."""
    notes = []
    try:
        nb = notebooks.read(nb_path)
    except Exception:  # noqa: BLE001
        return notes
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    if any(o.get("ename") == "CellTimeoutError" for o in errors):
        notes.append("a cell hit the per-cell time limit")
    if any(o.get("ename") == "MemoryError" or "allocate memory" in str(o.get("evalue", "")) for o in errors):
        notes.append("an allocation hit the memory limit")
    return notes


# ---------------------------------------------------------------- the worker side

def network_isolation_available() -> bool:
    """True when ``unshare -n`` can give a process an empty network namespace (root, or
    user namespaces allowed) and ``ip`` can bring its loopback up."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        try:
            probe = subprocess.run(prefix + ["ip", "link", "set", "lo", "up"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return True
    return False


def _command(args: list[str], isolate: bool) -> list[str]:
    cmd = [sys.executable, "-m", "nbgrader", *args]
    if not isolate:
        return cmd
    # nbgrader talks to its kernel over loopback TCP: bring lo up inside the new namespace.
    script = 'ip link set lo up && exec "$@"'
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    return prefix + ["sh", "-c", script, "sh", *cmd]


def _limit_memory(memory_gb: float):
    limit = int(memory_gb * 1024 ** 3)

    def apply():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    return apply


def run_limited(args: list[str], cwd: Path, limits: Limits, env: dict, isolate: bool) -> tuple[int | None, str]:
    """Run ``nbgrader <args>`` in its own session under the limits; kill the whole process
    group (nbgrader and its kernel) when the wall-clock limit passes. Returns (exit code or
    None on timeout, log)."""
    log_path = cwd / f".nbgrader-{os.getpid()}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(_command(args, isolate), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=_limit_memory(limits.memory_gb))
        try:
            code = proc.wait(timeout=limits.time_limit)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
            code = None
    text = log_path.read_text(errors="replace")
    log_path.unlink(missing_ok=True)
    return code, text


def kill_tree(pid: int) -> None:
    """Kill a process and every descendant. Kernels run in process groups of their own
    (jupyter_client calls setpgrp), so killing nbgrader's group alone would orphan them."""
    import psutil

    try:
        parent = psutil.Process(pid)
        family = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


_WORKER: dict = {}


def worker_init(course: str, lab: str, limits: Limits, isolate: bool) -> None:
    """Each worker process gets its own scratch course with a private SQLite gradebook."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C
    scratch = Path(tempfile.mkdtemp(prefix=f"grade-{lab}-"))
    build.scratch_course(Path(course), scratch)
    # The worker reads its private gradebook in-process too, so its own environment must
    # point there (the coordinator keeps the course's db_url, e.g. PostgreSQL).
    os.environ["COURSE_DB_URL"] = f"sqlite:///{scratch / 'gradebook.db'}"
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(limits.threads)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    code, log = run_limited(["generate_assignment", lab, "--force"], scratch,
                            Limits(time_limit=600, memory_gb=limits.memory_gb), env, False)
    if code != 0:
        raise RuntimeError(f"could not prepare a scratch course: {log[-2000:]}")
    _WORKER.update(course=Path(course), scratch=scratch, lab=lab, limits=limits, env=env, isolate=isolate)


def grade_in_worker(student: str) -> Result:
    """Grade one submission in this worker's scratch course."""
    w = _WORKER
    course, scratch, lab, limits = w["course"], w["scratch"], w["lab"], w["limits"]
    result = Result(student, lab, FAILED, digest=submission_digest(course / "submitted" / student / lab))
    start = time.perf_counter()
    try:
        result.notes, result.timestamp = prepare_submission(course, scratch, lab, student)
    except SubmissionProblem as problem:
        result.reason = str(problem)
        result.seconds = round(time.perf_counter() - start, 1)
        return result
    shutil.rmtree(scratch / "autograded" / student, ignore_errors=True)
    code, log = run_limited(["autograde", lab, "--student", student, "--force"], scratch, limits,
                            w["env"], w["isolate"])
    result.seconds = round(time.perf_counter() - start, 1)
    graded_nb = layout.notebook(scratch, "autograded", lab, student=student)
    if code is None:
        result.reason = f"time limit: the notebook ran longer than {limits.time_limit:g} s and was stopped"
        return result
    if code != 0 or not graded_nb.is_file():
        result.reason = _failure_reason(log, limits)
        return result
    rows = {r.student: r for r in nbgrader_ops.scores(scratch, lab)}
    row = rows.get(student)
    if row is None:
        result.reason = "nbgrader recorded no grade"
        return result
    result.status = GRADED
    result.score, result.max_score = row.score, row.max_score
    result.cells = {k: list(v) for k, v in row.cells.items()}
    result.notes += scan_outputs(graded_nb)
    result.autograded_dir = str(graded_nb.parent)
    return result


def _failure_reason(log: str, limits: Limits) -> str:
    if "DeadKernelError" in log or "Kernel died" in log:
        if "MemoryError" in log or "Cannot allocate memory" in log or "Killed" in log:
            return f"memory limit: the kernel died above {limits.memory_gb:g} GB"
        return "kernel died (the notebook crashed or exited the Python process)"
    if "MemoryError" in log:
        return f"memory limit: nbgrader ran out of memory ({limits.memory_gb:g} GB)"
    lines = [l.strip() for l in log.splitlines() if "ERROR" in l or "Error" in l]
    return "nbgrader error: " + (lines[-1][:160] if lines else "see nbgrader's log")


# ---------------------------------------------------------------- the coordinator side

def ledger_path(course: Path, lab: str, student: str) -> Path:
    return course / LEDGER_DIR / lab / f"{student}.json"


def read_ledger(course: Path, lab: str, student: str) -> Result | None:
    path = ledger_path(course, lab, student)
    try:
        return Result(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def install_autograded(course: Path, result: Result) -> None:
    """Move the scratch autograded copy into ``autograded/<student>/<lab>`` atomically."""
    final = course / "autograded" / result.student / result.lab
    staging = final.parent / f".{result.lab}.incoming"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(result.autograded_dir, staging)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def merge_into_gradebook(course: Path, result: Result) -> None:
    """Write one graded submission into the course gradebook through nbgrader's API, in one
    transaction: the submission with its timestamp and every cell's auto score."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings(), Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        # nbgrader's add_submission triggers a harmless SQLAlchemy autoflush warning.
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_student(result.student)
        ts = result.timestamp
        submission = gb.update_or_create_submission(result.lab, result.student, timestamp=ts)
        for nb in submission.notebooks:
            for grade in nb.grades:
                if grade.name in result.cells:
                    grade.auto_score = result.cells[grade.name][0]
                    grade.needs_manual_grade = False
        gb.db.commit()


def remove_from_gradebook(course: Path, lab: str, student: str) -> None:
    """A submission that now fails must not keep an old grade."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        try:
            gb.remove_submission(lab, student)
        except MissingEntry:
            pass
    shutil.rmtree(course / "autograded" / student / lab, ignore_errors=True)


def record(course: Path, result: Result) -> None:
    """Install a finished result: autograded copy, gradebook, then the ledger."""
    if result.status == GRADED:
        install_autograded(course, result)
        merge_into_gradebook(course, result)
    else:
        remove_from_gradebook(course, result.lab, result.student)
    stored = asdict(result) | {"autograded_dir": "", "reused": False}
    _atomic_write(ledger_path(course, result.lab, result.student), json.dumps(stored, indent=2))


def find_students(course: Path, lab: str, wanted: list[str] | None = None) -> list[str]:
    folder = course / "submitted"
    present = sorted(p.parent.name for p in folder.glob(f"*/{lab}") if p.is_dir()) if folder.is_dir() else []
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


def default_workers(limits: Limits) -> int:
    """One worker per core, bounded by memory (each submission may use ``memory_gb``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    except (ValueError, OSError):
        total_gb = limits.memory_gb * cores
    return max(1, min(cores, int((total_gb - 2) // limits.memory_gb)))


def grade_lab(course: Path, lab: str, students: list[str] | None = None, workers: int | None = None,
              limits: Limits | None = None, force: bool = False, progress: bool = True) -> list[Result]:
    """Grade every (or the named) submission of ``lab``; return one Result per student."""
    limits = limits or Limits()
    workers = workers or default_workers(limits)
    ensure_assignment(course, lab)
    everyone = find_students(course, lab, students)
    results, todo = {}, []
    for student in everyone:
        previous = read_ledger(course, lab, student)
        digest = submission_digest(course / "submitted" / student / lab)
        if not force and previous and previous.digest == digest:
            previous.reused = True
            results[student] = previous
        else:
            todo.append(student)
    isolate = limits.isolate_network and network_isolation_available()

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"grading {lab}", unit="submission", file=sys.stderr)
    if todo:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), initializer=worker_init,
                                 initargs=(str(course), lab, limits, isolate)) as pool:
            pending = {pool.submit(grade_in_worker, s): s for s in todo}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    student = pending.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # noqa: BLE001 - a worker crash fails one submission
                        result = Result(student, lab, FAILED, reason=f"grader crashed: {type(exc).__name__}: {exc}"[:200],
                                        digest=submission_digest(course / "submitted" / student / lab))
                    record(course, result)
                    results[student] = result
                    if bar:
                        bar.update(1)
                        bar.set_postfix_str(f"{student}: {result.status}")
    if bar:
        bar.close()
    return [results[s] for s in everyone]


def format_results(results: list[Result]) -> str:
    header = ["student", "lab", "score", "status"]
    rows = [[r.student, r.lab, "-" if r.score is None else f"{r.score:g}/{r.max_score:g}",
             r.status_text + (" [unchanged since last run]" if r.reused else "")] for r in results]
    return table.format_table(header, rows)
