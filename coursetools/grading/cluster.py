"""``course grade --scheduler ADDRESS``: the submissions are graded on a Dask distributed cluster.

Only the local process pool of :mod:`coordinator` is replaced: the coordinator still decides
what to grade and is the only writer of the gradebook and the ledger, merging each result as it
completes. Each submission is one Dask task that runs :mod:`worker`'s code (code policy, then
``nbgrader autograde`` with the kernel in the bubblewrap sandbox) in a scratch course that the
Dask worker process builds once per lab and configuration and keeps for later runs.

What travels with a task: the lab's course files (``nbgrader_config.py`` and ``source/<lab>``,
tens of KB, so a task never depends on data a dead worker held) and the submission as the
coordinator took it in (:func:`worker.take_in`: the notebook and the few files grading reads;
refusals such as an invalid notebook are decided there, without a task). With ``shared_fs`` the
workers read the course directory at the same path instead. The graded notebook comes back with
the result.

Faults are left to Dask: the scheduler reschedules the task of a worker that died (a task whose
workers died more than ``distributed.scheduler.allowed-failures`` times ends as a grader crash,
which the next run regrades, never as a verdict on the submission); a lost scheduler cancels
every pending task, which is resubmitted once the client has reconnected and a worker is back,
or the run stops with :class:`ClusterLost` naming the students still to grade.

:func:`connect` refuses a cluster that would not grade as this machine does: a worker with
another Python, other versions of the key packages or other course code (a grade must not depend
on which machine computed it), workers that contain kernels differently, or a worker process
with more than one thread (a worker grades one submission at a time, like a local one).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import time
import uuid
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from coursetools import build
from coursetools.grading import coordinator, sandbox, worker
from coursetools.grading.ledger import FAILED, Result
from coursetools.grading.worker import Limits

SCHEDULER_ENV = "COURSE_DASK_SCHEDULER"
# Compared between the coordinator and every worker (besides Python and the course code digest).
KEY_PACKAGES = ("pytorch-classification-course", "torch", "torchvision", "numpy", "nbgrader", "nbconvert",
                "nbclient", "ipykernel", "jupyter_client", "distributed", "cloudpickle")
CONNECT_SECONDS = 30      # reaching the scheduler
RECONNECT_SECONDS = 300   # for a lost scheduler to come back (restarted) before the run stops
WORKERS_SECONDS = 120     # for a first worker to join (after a scheduler restart too)
KEEP_SCRATCH = 2          # scratch courses a worker process keeps (labs / configurations)


class ClusterRefused(RuntimeError):
    """The cluster cannot grade as this machine would; the message says why and what to do."""


class ClusterLost(RuntimeError):
    """The scheduler went away and did not come back; ``students`` were not graded."""

    def __init__(self, message: str, students: list[str]):
        super().__init__(message)
        self.students = students


def scheduler_address(given: str | None = None) -> str | None:
    """``--scheduler``, else ``$COURSE_DASK_SCHEDULER``; None grades locally."""
    return given or os.environ.get(SCHEDULER_ENV) or None


def code_digest() -> str:
    """A digest of the course package's code and data (``helpers``, ``coursetools``) as this
    process imports them: an editable install's working tree counts as it is."""
    h = hashlib.sha256()
    for package in ("helpers", "coursetools"):
        root = Path(sandbox.package_dir(package))
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(f"{package}/{path.relative_to(root)}\0".encode() + path.read_bytes())
    return h.hexdigest()[:16]


def worker_report(limits: Limits) -> dict:
    """What a worker process grades with besides package versions (run there by Client.run)."""
    sandboxed, how = coordinator.containment(limits)
    return {"course code": code_digest(), "sandboxed": sandboxed, "how": how}


def environment(versions: dict, report: dict) -> dict:
    """The compared facts of one process: Python, KEY_PACKAGES (from Dask's get_versions) and
    the course code digest."""
    packages = versions.get("packages", {})
    return {"python": packages.get("python"), **{p: packages.get(p) for p in KEY_PACKAGES},
            "course code": report.get("course code")}


def mismatches(here: dict, workers: dict[str, dict]) -> list[str]:
    """One line per worker whose environment differs from ``here``, naming what differs."""
    lines = []
    for address, theirs in sorted(workers.items()):
        differ = [f"{k} {theirs.get(k) or 'missing'} (here {v or 'missing'})" for k, v in here.items()
                  if theirs.get(k) != v]
        if differ:
            lines.append(f"{address}: " + ", ".join(differ))
    return lines


@dataclass
class Job:
    """What every task of a run carries besides its submission."""
    lab: str
    limits: Limits
    allowed: list[str]
    key: str                     # the scratch course a worker builds for this job (same files, lab, limits)
    bundle: bytes | None = None  # nbgrader_config.py and source/<lab> (None: read ``course``)
    course: str = ""             # the course directory, with a shared file system


@dataclass
class Graded:
    """A task's answer: the result, the graded notebook's folder as bytes, who graded it."""
    result: Result
    files: dict[str, bytes]
    worker: str


def pack_course(course: Path, lab: str) -> tuple[bytes, str]:
    """The files a scratch course for ``lab`` is made of, as a tar.gz, and their digest."""
    h, buffer = hashlib.sha256(), io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="course-pack-") as tmp:
        copy = build.scratch_course(course, Path(tmp))
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for rel in [Path("nbgrader_config.py")] + sorted(p.relative_to(copy) for p in
                                                             (copy / "source" / lab).rglob("*") if p.is_file()):
                h.update(f"{rel}\0".encode() + (copy / rel).read_bytes())
                tar.add(copy / rel, str(rel))
    return buffer.getvalue(), h.hexdigest()[:16]


# ---------------------------------------------------------------- on a Dask worker

_LOCK = threading.Lock()            # one grading at a time per worker process
_SCRATCH: OrderedDict = OrderedDict()  # job key -> worker state (worker.setup), newest last


def _scratch_for(job: Job) -> dict:
    """This process's scratch course for ``job``, built on first use; older ones are removed."""
    state = _SCRATCH.get(job.key)
    if state is None:
        if not _SCRATCH:
            coordinator.remove_stale_scratch()  # left by worker processes that died
        while len(_SCRATCH) >= KEEP_SCRATCH:
            _remove(_SCRATCH.popitem(last=False)[1])
        root = Path(tempfile.mkdtemp(prefix=f"grade-{job.lab}-{os.getpid()}-"))
        try:
            course = Path(job.course) if job.course else root / "course"
            if job.bundle is not None:
                with tarfile.open(fileobj=io.BytesIO(job.bundle), mode="r:gz") as tar:
                    tar.extractall(course, filter="data")
            sandboxed, how = coordinator.containment(job.limits)
            coordinator.warm_data_cache(job.lab)
            state = worker.setup(str(course), job.lab, job.limits, str(root), sandboxed, how,
                                 job.limits.isolate_network, job.allowed)
        except BaseException:
            _remove({"root": root})
            raise
        state["root"] = root
        _SCRATCH[job.key] = state
    _SCRATCH.move_to_end(job.key)
    return state


def _remove(state: dict) -> None:
    shutil.rmtree(state["root"], ignore_errors=True)
    sandbox.remove_cgroups(Path(state["root"]).name)


def drop_scratch() -> int:
    """Remove this worker process's scratch courses unless it is grading (run by Client.run, so
    a benchmark starts every worker cold, as a local pool starts); returns how many."""
    if not _LOCK.acquire(blocking=False):
        return 0
    try:
        count = len(_SCRATCH)
        while _SCRATCH:
            _remove(_SCRATCH.popitem()[1])
        return count
    finally:
        _LOCK.release()


def grade_task(job: Job, student: str, taken: tuple[Result, dict[str, bytes]] | None) -> Graded:
    """One Dask task: grade ``student``'s submission with :mod:`worker`'s code in this process's
    scratch course. ``taken`` is the submission as the coordinator took it in (None: take it in
    from the shared course directory)."""
    from distributed import get_worker

    with _LOCK:
        state = _scratch_for(job)
        os.environ["COURSE_DB_URL"] = state["env"]["COURSE_DB_URL"]  # worker reads its private gradebook
        start = time.perf_counter()
        if taken is None:  # the scratch course may have been built from a bundle: read this course
            result = worker.grade(student, {**state, "course": Path(job.course)})
        else:
            result, files = taken
            folder = state["scratch"] / "submitted" / student / job.lab
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name, data in files.items():
                (folder / Path(name).name).write_bytes(data)
            result.sandbox = state["how"]
            result = worker.grade_taken(result, start, state)
        graded = {}
        if result.autograded_dir:
            graded = {p.name: p.read_bytes() for p in Path(result.autograded_dir).iterdir()
                      if p.is_file() and not p.is_symlink()}
            result.autograded_dir = ""
        for step in ("submitted", "autograded"):
            shutil.rmtree(state["scratch"] / step / student, ignore_errors=True)
    return Graded(result, graded, get_worker().address)


# ---------------------------------------------------------------- on the coordinator

@dataclass
class Cluster:
    """A connected, checked Dask cluster that grades submissions for :func:`coordinator.grade_lab`."""
    client: object
    address: str
    limits: Limits
    shared_fs: bool = False
    how: str = ""                         # how the workers contain kernels (one phrase for all)
    sandboxed: bool = False
    allowed_failures: int = 3
    only: list[str] | None = None         # restrict tasks to these workers (benchmarks)
    graded_by: Counter = field(default_factory=Counter)
    _threads: int = field(default=1, repr=False)
    _checked: float = field(default=0.0, repr=False)

    def worker_threads(self) -> dict[str, int]:
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        return {a: w["nthreads"] for a, w in workers.items() if self.only is None or a in self.only}

    def describe(self) -> str:
        threads = self.worker_threads()
        hosts = {a.rsplit(":", 1)[0] for a in threads}
        return (f"on the Dask cluster at {self.address} ({len(threads)} worker(s) on {len(hosts)} host(s)"
                f"{', shared file system' if self.shared_fs else ''})")

    def throughput(self, seconds: float) -> str:
        """Per worker: submissions graded and submissions per minute over ``seconds``."""
        per = [f"{a.split('://')[-1]} {n} ({60 * n / max(seconds, 1e-9):.1f}/min)"
               for a, n in sorted(self.graded_by.items())]
        return "per worker: " + (", ".join(per[:8]) + (f" and {len(per) - 8} more" if len(per) > 8 else "")
                                 if per else "none")

    def restrict(self, count: int) -> None:
        """Send tasks to the first ``count`` workers only (for ``course bench-grading``)."""
        self.only = sorted(self.client.scheduler_info(n_workers=-1)["workers"])[:count]

    def close(self) -> None:
        client_log = logging.getLogger("distributed.client")
        level = client_log.level
        client_log.setLevel(logging.CRITICAL)  # a reconnect still under way would log its cancellation
        try:
            self.client.close()
        finally:
            client_log.setLevel(level)

    def grade(self, course: Path, lab: str, students: list[str], limits: Limits, allowed: list[str],
              scratch_root: str, finish) -> None:
        """Grade ``students`` on the cluster, calling ``finish(student, result)`` in completion
        order. At most twice as many tasks as worker threads are in flight, so the scheduler
        never holds a whole class of notebooks."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        bundle, digest = pack_course(course, lab)
        if self.shared_fs:
            self._check_shared(course)
        job = Job(lab, limits, allowed, bundle=None if self.shared_fs else bundle,
                  course=str(course) if self.shared_fs else "",
                  key=hashlib.sha256(f"{digest}|{lab}|{limits!r}|{sorted(allowed)}"
                                     .encode()).hexdigest()[:16])
        queue, pending, futures, lost = deque(students), {}, as_completed(loop=self.client.loop), []
        try:
            while queue or pending or lost:
                if lost and not pending:  # every task was cancelled: the scheduler went away
                    self._reconnect(lost + list(queue))
                    queue.extendleft(reversed(lost))
                    lost, futures = [], as_completed(loop=self.client.loop)  # the client may be a new one
                while not lost and queue and len(pending) < self._capacity():
                    self._submit(job, course, queue.popleft(), scratch_root, pending, futures, finish)
                if not pending:
                    continue
                future = next(futures)
                student = pending.pop(future)
                if future.cancelled():  # resubmitted once the scheduler is back
                    lost.append(student)
                    continue
                try:
                    result = self._receive(future.result(), scratch_root)
                except KilledWorker:
                    result = coordinator.crashed(course, lab, student,
                                                 f"a grading worker died {self.allowed_failures + 1} times")
                except Exception as exc:  # noqa: BLE001 - a task error fails one submission
                    result = coordinator.crashed(course, lab, student, f"{type(exc).__name__}: {exc}")
                finish(student, result)
        finally:
            if pending:  # stopped early (Ctrl-C, an error): nothing more is started for this run
                try:
                    self.client.cancel(list(pending), force=True)
                except Exception:  # noqa: BLE001 - the client may be closed already
                    pass

    def _capacity(self) -> int:
        """Tasks in flight: twice the workers' threads, refreshed every few seconds (a cluster
        may grow while it grades)."""
        if time.monotonic() - self._checked > 5:
            try:
                self._threads = max(1, sum(self.worker_threads().values()))
                self._checked = time.monotonic()
            except Exception:  # noqa: BLE001 - scheduler unreachable right now: keep the last count
                pass
        return 2 * self._threads

    def _submit(self, job: Job, course: Path, student: str, scratch_root: str, pending: dict, futures,
                finish) -> None:
        taken = None
        if not self.shared_fs:
            intake = Path(scratch_root) / "intake"
            result = worker.take_in(course, intake, job.lab, student, self.how)
            if result.reason:  # nothing gradable: decided here, as a local worker would
                finish(student, result)
                return
            folder = intake / "submitted" / student / job.lab
            taken = (result, {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()})
            shutil.rmtree(intake / "submitted" / student, ignore_errors=True)
        future = self.client.submit(grade_task, job, student, taken, key=f"grade-{job.lab}-{student}-{uuid.uuid4().hex[:8]}",
                                    pure=False, workers=self.only, allow_other_workers=False)
        pending[future] = student
        futures.add(future)

    def _receive(self, graded: Graded, scratch_root: str) -> Result:
        """The task's result with its graded notebook placed where :mod:`merge` takes it from."""
        result = graded.result
        if result.status != FAILED:
            folder = Path(scratch_root) / "returned" / result.student
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name, data in graded.files.items():
                (folder / Path(name).name).write_bytes(data)
            result.autograded_dir = str(folder)
        self.graded_by[graded.worker] += 1
        return result

    def _reconnect(self, students: list[str]) -> None:
        """After the scheduler went away: wait for the client to reconnect (or connect anew) and
        for a worker that passes :meth:`check`; otherwise stop, naming what to rerun."""
        from distributed import Client

        deadline = time.monotonic() + RECONNECT_SECONDS
        while self.client.status not in ("running", "closed") and time.monotonic() < deadline:
            time.sleep(0.2)
        while self.client.status != "running" and time.monotonic() < deadline:
            try:
                self.client = Client(self.address, timeout=CONNECT_SECONDS, set_as_default=False)
            except (OSError, TimeoutError):
                time.sleep(1)
        try:
            if self.client.status != "running":
                raise TimeoutError
            self.check(wait=max(1.0, deadline - time.monotonic()))
        except (TimeoutError, OSError):
            raise ClusterLost(f"lost the Dask scheduler at {self.address} and it did not come back with a "
                              f"worker within {RECONNECT_SECONDS} s; graded submissions are merged, "
                              f"{len(students)} are not: {', '.join(students)}", students) from None

    def check(self, wait: float = WORKERS_SECONDS) -> None:
        """Wait up to ``wait`` seconds for a worker, then refuse (ClusterRefused) workers that
        would not grade as this machine does: threads, environment, containment (module doc)."""
        client = self.client
        client.wait_for_workers(1, timeout=wait)
        threaded = sorted(a for a, w in client.scheduler_info(n_workers=-1)["workers"].items() if w["nthreads"] != 1)
        if threaded:
            raise ClusterRefused(f"grading workers run one submission at a time, but {', '.join(threaded)} run "
                                 "several threads: start them with `dask worker ADDRESS --nthreads 1 --nworkers N`")
        versions = client.get_versions(packages=list(KEY_PACKAGES))
        try:
            reports = client.run(worker_report, self.limits)
        except (ImportError, AttributeError) as exc:
            raise ClusterRefused(f"the Dask workers cannot run the grader ({type(exc).__name__}: {exc}): install "
                                 "this project in the workers' environment (README: grading on a Dask cluster)") from None
        here = environment(versions["client"], {"course code": code_digest()})
        theirs = {a: environment(versions["workers"].get(a) or {}, r) for a, r in reports.items()}
        differ = mismatches(here, theirs)
        if differ:
            raise ClusterRefused("the Dask workers' environment differs from this machine's, so a grade could "
                                 "depend on where it was computed:\n  " + "\n  ".join(differ) +
                                 "\nInstall the same environment on every worker (README: grading on a Dask cluster).")
        if len({r["how"] for r in reports.values()}) > 1:
            raise ClusterRefused("the Dask workers contain grading kernels differently:\n  " + "\n  ".join(
                f"{a}: {r['how']}" for a, r in sorted(reports.items())) + "\nInstall bubblewrap on every worker.")
        first = next(iter(reports.values()))
        self.how, self.sandboxed = first["how"], first["sandboxed"]
        self.allowed_failures = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)

    def _check_shared(self, course: Path) -> None:
        config = str(course / "nbgrader_config.py")
        blind = sorted(a for a, seen in self.client.run(os.path.isfile, config).items()
                       if not seen and (self.only is None or a in self.only))
        if blind:
            raise ClusterRefused(f"with a shared file system every worker must see {course} at the same path; "
                                 f"{', '.join(blind)} do not (mount it there, or grade without --shared-fs: "
                                 "the course files and submissions then travel with each task)")


def connect(address: str, limits: Limits, shared_fs: bool = False) -> Cluster:
    """Connect to the scheduler at ``address`` and check its workers (:meth:`Cluster.check`);
    raises ClusterRefused with what to do."""
    from distributed import Client

    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterRefused(f"cannot reach a Dask scheduler at {address} ({exc}); start one with "
                             "`dask scheduler` (README: grading on a Dask cluster)") from None
    cluster = Cluster(client, address, limits, shared_fs)
    try:
        cluster.check()
    except TimeoutError:
        client.close()
        raise ClusterRefused(f"no Dask worker joined the scheduler at {address} within {WORKERS_SECONDS} s; "
                             f"start workers with `dask worker {address} --nthreads 1`") from None
    except BaseException:
        client.close()
        raise
    return cluster
