"""The worker side of ``course grade``: one submission at a time, in a private scratch course.

Each worker process owns a scratch course (the lab's source, a private SQLite gradebook and
an nbgrader config extended with the trusted executor and scorer) inside the run's scratch
root, which the coordinator removes however the run ends. A submission is prepared
(:mod:`submission`), scanned by the code policy (:mod:`policy`), and autograded by its own
``nbgrader autograde`` process under a wall-clock limit; nbgrader starts the kernel inside the
sandbox (:mod:`sandbox`, :mod:`kernel`). The worker reads back only what trusted code wrote:
the private gradebook and the scorer's verdict file.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from coursetools import build, layout, nbgrader_ops, notebooks
from coursetools.grading import policy, sandbox, submission
from coursetools.grading.ledger import FAILED, GRADED, REVIEW, Result
from coursetools.grading.scorer import VERDICT_ENV


@dataclass
class Limits:
    """Per-submission limits. ``time_limit``: seconds for the whole notebook (the per-cell
    timeout comes from nbgrader_config.py); ``memory_gb``: data memory of the kernel;
    ``threads``: intra-op threads per kernel; ``isolate_network``: no network for kernels;
    ``disk_mb``: the kernel's private working directory and HOME together (tmpfs); ``output_mb``:
    output a notebook may print; ``processes``: tasks the kernel's uid may run."""
    time_limit: float = 1800.0
    memory_gb: float = 6.0
    threads: int = 1
    isolate_network: bool = True
    disk_mb: int = 512
    output_mb: int = 4
    processes: int = 512
    partial_credit: bool = False
    sandbox: bool = True          # False: grade without the sandbox (said in the header and ledger)


TRUSTED_CONFIG = '''
# ---- appended by `course grade` in this scratch course: trusted execution and scoring ----
from nbconvert.preprocessors import ClearMetadataPreprocessor as _ClearMetadata
from nbgrader.preprocessors import (AssignLatePenalties as _Late, CheckCellMetadata as _CheckMeta,
                                    IgnorePattern as _Ignore, LimitOutput as _LimitOutput)
from coursetools.grading.executor import TrustedExecute as _TrustedExecute
from coursetools.grading.scorer import TrustedScores as _TrustedScores

c.Autograde.autograde_preprocessors = [_TrustedExecute, _Ignore, _ClearMetadata, _LimitOutput,
                                       _TrustedScores, _Late, _CheckMeta]
c.TrustedExecute.output_limit_bytes = {output_bytes}
c.TrustedScores.partial_credit = {partial_credit}
c.Autograde.exporter_class = "nbconvert.exporters.NotebookExporter"  # the course's refuses plain autograde
'''


# ---------------------------------------------------------------- running nbgrader under limits

def network_isolation_available() -> bool:
    """True when ``unshare -n`` can give a process an empty network namespace (the fallback
    when the sandbox is unavailable)."""
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
    # nbgrader talks to an unsandboxed kernel over loopback TCP: bring lo up in the namespace.
    script = 'ip link set lo up && exec "$@"'
    prefix = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    return prefix + ["sh", "-c", script, "sh", *cmd]


def _libc_prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()  # resolved here: nothing may be imported between fork and exec


def _child_setup(memory_gb: float):
    limit = int(memory_gb * 1024 ** 3)

    def apply():
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        if _PRCTL is not None:  # die with the worker: no orphaned nbgrader (or kernel) outlives it
            _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    return apply


def run_limited(args: list[str], cwd: Path, limits: Limits, env: dict, isolate: bool) -> tuple[int | None, str]:
    """Run ``nbgrader <args>`` in its own session under the limits; kill the whole process
    tree (nbgrader and its sandbox) when the wall-clock limit passes. Returns (exit code, or
    None on timeout, and the log)."""
    log_path = cwd / f".nbgrader-{os.getpid()}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(_command(args, isolate), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_child_setup(max(limits.memory_gb, 2.0)))
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
    """Kill a process and every descendant (kernels run in process groups of their own)."""
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


# ---------------------------------------------------------------- one worker process

_WORKER: dict = {}


def _matplotlib_cache(into: Path) -> str:
    """Build matplotlib's font cache once per worker, to seed each sandbox's HOME with (a
    cold cache costs every kernel a few seconds)."""
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env={**os.environ, "MPLCONFIGDIR": str(into)},
                   capture_output=True, timeout=120)
    return str(into)


def init(course: str, lab: str, limits: Limits, scratch_root: str, use_sandbox: bool, sandbox_how: str,
         isolate: bool, allowed_imports: list[str]) -> None:
    """Each worker process gets its own scratch course with a private SQLite gradebook."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C
    _WORKER.update(setup(course, lab, limits, scratch_root, use_sandbox, sandbox_how, isolate, allowed_imports))


def setup(course: str, lab: str, limits: Limits, scratch_root: str, use_sandbox: bool, sandbox_how: str,
          isolate: bool, allowed_imports: list[str]) -> dict:
    """A scratch course in ``scratch_root`` ready to grade ``lab``: what a worker holds (also
    built by a Dask worker, :mod:`cluster`, where signals belong to the worker)."""
    scratch = Path(tempfile.mkdtemp(prefix="w", dir=scratch_root))
    build.scratch_course(Path(course), scratch)
    with open(scratch / "nbgrader_config.py", "a") as config:
        config.write(TRUSTED_CONFIG.format(output_bytes=limits.output_mb * 1024 ** 2,
                                           partial_credit=limits.partial_credit))
    # The worker reads its private gradebook in-process too, so its own environment must
    # point there (the coordinator keeps the course's db_url, e.g. PostgreSQL).
    os.environ["COURSE_DB_URL"] = f"sqlite:///{scratch / 'gradebook.db'}"
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(limits.threads)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    runtime = scratch / "runtime"
    runtime.mkdir(mode=0o700)
    env["JUPYTER_RUNTIME_DIR"] = str(runtime)
    if use_sandbox:
        sockets = scratch / "s"
        sockets.mkdir()
        os.chmod(sockets, 0o711)
        spec = sandbox.SandboxSpec(ro_binds=sandbox.student_binds(), socket_dir=str(sockets),
                                   env=sandbox.student_env(limits.threads),
                                   memory_bytes=int(limits.memory_gb * 1024 ** 3),
                                   max_processes=limits.processes, work_bytes=limits.disk_mb * 1024 ** 2,
                                   max_file_bytes=limits.disk_mb * 1024 ** 2,
                                   mpl_cache=_matplotlib_cache(scratch / "mpl"),
                                   cgroup=f"{Path(scratch_root).name}-{scratch.name}"
                                   if sandbox.cgroups_available() else "")
        env[sandbox.SPEC_ENV] = str(spec.save(scratch / "sandbox.json"))
    code, log = run_limited(["generate_assignment", lab, "--force"], scratch,
                            Limits(time_limit=600, memory_gb=limits.memory_gb), env, False)
    if code != 0:
        raise RuntimeError(f"could not prepare a scratch course: {log[-2000:]}")
    return dict(course=Path(course), scratch=scratch, lab=lab, limits=limits, env=env,
                isolate=isolate and not use_sandbox, how=sandbox_how, allowed=allowed_imports,
                release=notebooks.read(layout.notebook(scratch, "release", lab)))


def grade(student: str, w: dict | None = None) -> Result:
    """Grade one submission in this worker's scratch course."""
    w = w or _WORKER
    start = time.perf_counter()
    result = take_in(w["course"], w["scratch"], w["lab"], student, w["how"])
    return result if result.reason else grade_taken(result, start, w)


def take_in(course: Path, scratch: Path, lab: str, student: str, how: str) -> Result:
    """Copy the gradable part of a submission into ``scratch`` (:func:`submission.prepare`);
    the Result has a ``reason`` (failed) when there is nothing gradable."""
    original = course / "submitted" / student / lab
    result = Result(student, lab, FAILED, digest=submission.digest(original), sandbox=how)
    start = time.perf_counter()
    try:
        result.notes, result.timestamp = submission.prepare(course, scratch, lab, student)
    except submission.SubmissionProblem as problem:
        result.reason = str(problem)
        result.seconds = round(time.perf_counter() - start, 1)
    return result


def grade_taken(result: Result, start: float, w: dict | None = None) -> Result:
    """Grade a submission already taken into the worker's scratch course: code policy, then
    ``nbgrader autograde`` (kernel in the sandbox), then what the trusted side wrote."""
    w = w or _WORKER
    scratch, lab, limits, student = w["scratch"], w["lab"], w["limits"], result.student
    taken = layout.notebook(scratch, "submitted", lab, student=student)
    result.review = [str(f) for f in policy.scan(notebooks.read(taken), w["release"], w["allowed"])]
    shutil.rmtree(scratch / "autograded" / student, ignore_errors=True)
    verdict_file = scratch / f"verdict-{student}.json"
    verdict_file.unlink(missing_ok=True)
    env = {**w["env"], VERDICT_ENV: str(verdict_file)}
    code, log = run_limited(["autograde", lab, "--student", student, "--force"], scratch, limits, env, w["isolate"])
    result.seconds = round(time.perf_counter() - start, 1)
    graded_nb = layout.notebook(scratch, "autograded", lab, student=student)
    if code is None:
        result.reason = f"time limit: the notebook ran longer than {limits.time_limit:g} s and was stopped"
        return result
    if code != 0 or not graded_nb.is_file():
        result.reason = _failure_reason(log, limits)
        if "exit without" in result.reason:
            result.reason += f" [exit {code}]"
        return result
    rows = {r.student: r for r in nbgrader_ops.scores(scratch, lab)}
    row = rows.get(student)
    if row is None:
        result.reason = "nbgrader recorded no grade"
        return result
    try:
        verdict = json.loads(verdict_file.read_text())
    except (OSError, ValueError):
        verdict = {"tamper": ["the trusted scorer left no verdict"], "truncated_bytes": 0}
    result.review += [f"grading kernel tampered with: {t}" for t in verdict.get("tamper", [])]
    if verdict.get("truncated_bytes"):
        result.notes.append(f"output truncated ({verdict['truncated_bytes'] // 1024} KB over the "
                            f"{limits.output_mb} MB limit)")
    result.status = REVIEW if result.review else GRADED
    result.score, result.max_score = row.score, row.max_score
    result.cells = {k: list(v) for k, v in row.cells.items()}
    result.notes += submission.scan_outputs(graded_nb)
    result.autograded_dir = str(graded_nb.parent)
    return result


def _failure_reason(log: str, limits: Limits) -> str:
    if "DeadKernelError" in log or "Kernel died" in log:
        if "MemoryError" in log or "Cannot allocate memory" in log or "Killed" in log:
            return f"memory limit: the kernel died above {limits.memory_gb:g} GB"
        return "kernel died (the notebook crashed or exited the Python process)"
    if "MemoryError" in log:
        return f"memory limit: nbgrader ran out of memory ({limits.memory_gb:g} GB)"
    lines = [line.strip() for line in log.splitlines() if "ERROR" in line or "Error" in line]
    tail = " | ".join(line.strip() for line in log.strip().splitlines()[-3:])
    return "nbgrader error: " + (lines[-1][:160] if lines else f"exit without an error message ({tail[:200]})")
