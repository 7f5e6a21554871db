"""`course grade --scheduler` on a real Dask cluster: a `dask scheduler` and two `dask worker`
processes on loopback, no mocks. A small lab 01 class (correct, wrong, broken) graded on the
cluster gives the same gradebook, ledger and grades.csv as a local run; a worker killed while it
grades has its submission requeued and graded; workers whose environment differs from the
coordinator's are refused before anything is graded."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from coursetools import cli, grading, layout, nbgrader_ops, notebooks
from coursetools.grading import cluster, coordinator
from conftest import ROOT, gradebook_snapshot, make_grading_course, wait_for
from dask_processes import DaskProcesses

# One xdist worker runs this module: one cluster and one graded class serve every test.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("grading-cluster")]
LAB = layout.labs(ROOT)[0]
LIMITS = grading.Limits(time_limit=90.0, memory_gb=4.0)  # as the CLI makes them: one scratch course per worker
LIMIT_FLAGS = ["--time-limit", "90", "--memory-gb", "4"]


def _wait_for(predicate, seconds: float, what: str):
    found = wait_for(predicate, seconds)
    assert found, f"timed out waiting for {what}"
    return found


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        client.wait_for_workers(count, timeout=180)


def _scheduler_address(file: Path) -> str | None:
    try:
        return json.loads(file.read_text()).get("address")
    except (OSError, ValueError):  # not written yet, or half written
        return None


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers (each under its nanny) on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("dask")
    dask = str(Path(sys.executable).parent / "dask")
    started = []

    def start(*args, log):
        with open(folder / log, "w") as out:
            started.append(subprocess.Popen([dask, *args], stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True))

    start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
          "--scheduler-file", str(folder / "scheduler.json"), log="scheduler.log")
    try:
        address = _wait_for(lambda: _scheduler_address(folder / "scheduler.json"), 60, "the scheduler")
        for i in range(2):
            start("worker", address, "--nthreads", "1", "--name", f"w{i}", "--no-dashboard", "--memory-limit", "0",
                  "--local-directory", str(folder / f"w{i}"), log=f"worker{i}.log")
        _wait_for_workers(address, 2)
        yield SimpleNamespace(address=address, nannies=[p.pid for p in started[1:]])
    finally:
        for proc in reversed(started):  # each in a session of its own: the group is nanny and worker
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        coordinator.remove_stale_scratch()  # the workers' scratch courses


@pytest.fixture(scope="module")
def graded(tmp_path_factory, dask_cluster):
    """The same class graded locally (API) and on the cluster (CLI), each exported to grades.csv."""
    base = tmp_path_factory.mktemp("class")
    local, release, source = make_grading_course(base / "local", LAB)
    put = lambda student, nb: notebooks.write_submission(local, student, LAB, nb)  # noqa: E731
    put("correct", notebooks.fill_solutions(release, source))
    put("wrong", notebooks.fill_solutions(release, source, {"ex4_training": "num_epochs = 1\nloss_values = [0.0]"}))
    put("exits", notebooks.fill_solutions(release, source, {"ex2_model": "import os\nos._exit(3)"}))
    put("bad-json", release)
    (local / "submitted" / "bad-json" / LAB / f"{LAB}.ipynb").write_text('{"cells": [')
    remote = shutil.copytree(local, base / "cluster")  # the same submissions, gradebook and timestamps

    grading.grade_lab(local, LAB, workers=2, limits=LIMITS, progress=False)
    nbgrader_ops.run(local, "export")
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "grade", LAB, "--dir", str(remote),
                           "--scheduler", dask_cluster.address, "--time-limit", "90", "--memory-gb", "4"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return SimpleNamespace(local=local, remote=remote, stdout=proc.stdout)


def _ledger(course: Path) -> dict:
    """Per student, the ledger entry without what legitimately differs between runs."""
    return {r.student: {k: v for k, v in vars(r).items() if k not in ("seconds",)}
            for r in (grading.read_ledger(course, LAB, p.stem)
                      for p in sorted((course / grading.LEDGER_DIR / LAB).glob("*.json")))}


def test_cluster_grades_exactly_as_locally(graded):
    local, remote = _ledger(graded.local), _ledger(graded.remote)
    assert set(local) == {"correct", "wrong", "exits", "bad-json"}
    assert remote == local
    assert local["correct"]["score"] == local["correct"]["max_score"] > local["wrong"]["score"] > 0
    assert local["exits"]["reason"].startswith("kernel died") and local["bad-json"]["reason"].startswith("invalid")
    assert all(r["sandbox"].startswith("sandboxed") for r in remote.values()) or not os.environ.get(
        "COURSE_REQUIRE_SANDBOX"), remote["correct"]["sandbox"]
    assert gradebook_snapshot(graded.remote, LAB) == gradebook_snapshot(graded.local, LAB)
    assert (graded.remote / "grades.csv").read_text() == (graded.local / "grades.csv").read_text()
    for student in ("correct", "wrong"):
        assert layout.notebook(graded.remote, "autograded", LAB, student=student).is_file()
    assert "on the Dask cluster at" in graded.stdout and "2 worker(s)" in graded.stdout, graded.stdout
    assert "per worker: 127.0.0.1:" in graded.stdout, graded.stdout


def _worker_grading(nannies: list[int], student: str | None = None):
    """The Dask worker process (a nanny's child) whose nbgrader is grading ``student`` (any)."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            if "autograde" in cmd and (student is None or student in cmd):
                for ancestor in proc.parents():
                    if ancestor.ppid() in nannies:
                        return ancestor
        except psutil.NoSuchProcess:
            pass
    return None


def test_a_worker_killed_mid_task_has_its_submission_requeued(graded, dask_cluster):
    before = gradebook_snapshot(graded.remote, LAB)
    session = grading.connect_cluster(dask_cluster.address, LIMITS, shared_fs=True)  # reads the course in place
    box = {}
    thread = threading.Thread(target=lambda: box.update(results=grading.grade_lab(
        graded.remote, LAB, students=["correct"], limits=LIMITS, force=True, progress=False, cluster=session)))
    try:
        thread.start()
        victim = _wait_for(lambda: _worker_grading(dask_cluster.nannies, "correct"), 300, "a worker grading")
        victim.kill()  # mid-task: its nbgrader and sandboxed kernel die with it
        thread.join(600)
    finally:
        session.close()
    [result] = box["results"]
    assert result.status == grading.GRADED and result.score == result.max_score, result.status_text
    assert not psutil.pid_exists(victim.pid) or victim.status() == psutil.STATUS_ZOMBIE
    assert sum(session.graded_by.values()) == 1
    assert grading.read_ledger(graded.remote, LAB, "correct").status == grading.GRADED
    assert gradebook_snapshot(graded.remote, LAB) == before
    _wait_for_workers(dask_cluster.address, 2)  # the nanny replaced the dead worker


def test_workers_with_another_environment_are_refused(graded, dask_cluster, monkeypatch):
    """A fake report on the coordinator's side (its course code changed since the workers were
    set up) stands for mismatched workers."""
    monkeypatch.setattr(cluster, "code_digest", lambda: "0000fake")
    with pytest.raises(grading.ClusterRefused) as refused:
        grading.connect_cluster(dask_cluster.address, LIMITS)
    message = str(refused.value)
    assert "environment differs" in message and "course code" in message and "(here 0000fake)" in message
    assert message.count("127.0.0.1:") == 2, message  # both workers named

    from coursetools import cli

    ledger_before = _ledger(graded.remote)
    assert cli.main(["grade", LAB, "--dir", str(graded.remote), "--scheduler", dask_cluster.address,
                     "--students", "correct", "--force"]) == 2
    assert _ledger(graded.remote) == ledger_before  # nothing was graded


def _class(folder, **answers):
    """A lab 01 course with a submission per student: "ref" (the reference) or "wrong"."""
    course, release, source = make_grading_course(folder, LAB)
    kinds = {"ref": notebooks.fill_solutions(release, source),
             "wrong": notebooks.fill_solutions(release, source, {"ex4_training": "num_epochs = 1\nloss_values = [0.0]"})}
    for student, kind in answers.items():
        notebooks.write_submission(course, student, LAB, kinds[kind])
    return course


def _kill_scheduler_mid_task(procs: DaskProcesses, run) -> SimpleNamespace:
    """Start ``run()`` in a thread, kill the scheduler once a worker is grading, return the box
    the thread fills (``value``) and the thread."""
    box = SimpleNamespace(value=None, error=None)

    def target():
        try:
            box.value = run()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            box.error = exc

    box.thread = threading.Thread(target=target)
    box.thread.start()
    _wait_for(lambda: _worker_grading(procs.nannies), 300, "a worker grading")
    procs.kill_scheduler()  # its workers close when they lose it, as Dask workers do
    return box


def test_a_restarted_scheduler_is_reconnected_and_a_lost_one_names_the_rerun(tmp_path, monkeypatch, capsys):
    """The scheduler dies mid-run. Restarted (with new workers, as a supervisor or a batch
    system would start them), the run reconnects, resubmits what was in flight and completes.
    If it never comes back, the run stops within RECONNECT_SECONDS, merges what was graded and
    prints the command that grades the rest; that command then completes the class."""
    answers = {"r1": "ref", "r2": "wrong"}
    course = _class(tmp_path / "class", **answers)
    procs = DaskProcesses(tmp_path / "dask")
    try:
        procs.start_scheduler()
        procs.start_workers(1)
        session = grading.connect_cluster(procs.address, LIMITS)
        try:
            box = _kill_scheduler_mid_task(procs, lambda: grading.grade_lab(course, LAB, limits=LIMITS,
                                                                             progress=False, cluster=session))
            procs.start_scheduler()  # the same address
            procs.start_workers(1)
            box.thread.join(600)
        finally:
            session.close()
        assert box.error is None, repr(box.error)
        results = {r.student: r for r in box.value}
        assert all(r.status == grading.GRADED for r in results.values()), [r.status_text for r in results.values()]
        full = results["r1"].max_score
        assert results["r1"].score == full > results["r2"].score
        graded = gradebook_snapshot(course, LAB)
        assert {s: v[0] for s, v in graded.items()} == {s: r.score for s, r in results.items()}
        ledger = _ledger(course)

        monkeypatch.setattr(cluster, "RECONNECT_SECONDS", 10)
        box = _kill_scheduler_mid_task(procs, lambda: cli.main(
            ["grade", LAB, "--dir", str(course), "--scheduler", procs.address, "--force", *LIMIT_FLAGS]))
        box.thread.join(300)
        assert box.error is None and box.value == 3, (box.value, box.error)
        out = capsys.readouterr().out
        assert f"stopped: lost the Dask scheduler at {procs.address}" in out, out
        [rerun] = [line.removeprefix("rerun: ") for line in out.splitlines() if line.startswith("rerun: ")]
        words = shlex.split(rerun)
        assert words[:3] == ["course", "grade", LAB] and "--force" in words, rerun
        assert words[words.index("--time-limit") + 1] == "90" and words[words.index("--dir") + 1] == str(course)
        rest = words[words.index("--students") + 1].split(",")
        assert rest and set(rest) <= set(answers), rerun
        assert gradebook_snapshot(course, LAB) == graded  # the same answers regraded: nothing changed
        assert {s: e for s, e in _ledger(course).items() if s in rest} == {s: ledger[s] for s in rest}

        procs.start_scheduler()
        procs.start_workers(1)
        assert cli.main(words[1:]) == 0
        assert gradebook_snapshot(course, LAB) == graded
        assert all(e["status"] == grading.GRADED for e in _ledger(course).values())
    finally:
        procs.stop()
        coordinator.remove_stale_scratch()


def test_version_mismatch_lines_name_what_differs():
    here = {"python": "3.11.7", "torch": "2.4.0", "course code": "abc"}
    workers = {"tcp://b:1": dict(here), "tcp://a:1": {**here, "torch": "2.3.1", "course code": "abd"},
               "tcp://c:1": {"python": "3.12.1", "course code": "abc"}}
    assert cluster.mismatches(here, workers) == [
        "tcp://a:1: torch 2.3.1 (here 2.4.0), course code abd (here abc)",
        "tcp://c:1: python 3.12.1 (here 3.11.7), torch missing (here 2.4.0)"]
