"""`course grade` end to end on lab 01: every bad-input kind ends with the right status while
the batch goes on, merged grades are exact (none lost, none duplicated), reruns are
idempotent, a killed run resumes, and the same pipeline works on PostgreSQL."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from coursetools import build, grading, layout, nbgrader_ops, notebooks
from conftest import ROOT, make_grading_course
from conftest import wait_for as _wait_for
from conftest import gradebook_snapshot as snapshot_of

# One xdist worker runs this module: its module-scoped batch is graded once, not once per worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("grading-e2e")]
LAB = layout.labs(ROOT)[0]
LIMITS = grading.Limits(time_limit=90, memory_gb=4)


def make_course(path: Path) -> tuple[Path, object, object]:
    return make_grading_course(path, LAB)


def cell_index(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if notebooks.nbgrader_meta(c).get("grade_id") == grade_id)


def gradebook_snapshot(course: Path) -> dict:
    return snapshot_of(course, LAB)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One course with a submission of every kind, graded once with two workers."""
    course, release, source = make_course(tmp_path_factory.mktemp("class"))
    reference = notebooks.fill_solutions(release, source)
    graded_ids = list(notebooks.graded_cells(release))
    put = lambda student, nb: notebooks.write_submission(course, student, LAB, nb)  # noqa: E731

    put("ok", reference)
    put("blank", release)
    put("bad-json", reference)
    (course / "submitted" / "bad-json" / LAB / f"{LAB}.ipynb").write_text('{"cells": [')
    put("missing", reference)
    (course / "submitted" / "missing" / LAB / f"{LAB}.ipynb").unlink()
    put("renamed", reference)
    (course / "submitted" / "renamed" / LAB / f"{LAB}.ipynb").rename(course / "submitted" / "renamed" / LAB / "mine.ipynb")

    nb = nbformat.from_dict(reference)
    nb.cells.pop(cell_index(nb, graded_ids[0]))
    put("deleted-cell", nb)
    nb = nbformat.from_dict(reference)
    i = cell_index(nb, graded_ids[1])
    copy = nbformat.from_dict(nb.cells[i])
    copy.id = "duplicate"
    nb.cells.insert(i, copy)
    put("duplicated-cell", nb)
    nb = nbformat.from_dict(reference)
    i = cell_index(nb, graded_ids[2])
    nb.cells[i] = nbformat.v4.new_markdown_cell(nb.cells[i].source, metadata=nb.cells[i].metadata, id=nb.cells[i].id)
    put("retyped-cell", nb)
    nb = nbformat.from_dict(reference)
    nb.cells[cell_index(nb, "ex4_training_tests")].source = "pass"
    nb.cells[cell_index(nb, "ex4_training")].source = "num_epochs = 1\nloss_values = [0.0]"
    put("edited-test", nb)

    put("no-timestamp", reference)
    (course / "submitted" / "no-timestamp" / LAB / "timestamp.txt").unlink()
    put("bad-timestamp", reference)
    (course / "submitted" / "bad-timestamp" / LAB / "timestamp.txt").write_text("last tuesday, honest")
    put("exits", notebooks.fill_solutions(release, source, {"ex2_model": "import os\nos._exit(3)"}))
    # an endless loop that waits rather than spins: the same wall-clock limit ends it, without
    # taking a core from the rest of the suite for the 90 s
    put("loops", notebooks.fill_solutions(release, source, {"ex1_data": "import time\nwhile True:\n    time.sleep(0.5)"}))
    put("memory-hog", notebooks.fill_solutions(release, source, {"ex1_data": "hog = torch.ones(2**31)  # 8 GB"}))
    flagged = nbformat.from_dict(reference)
    i = cell_index(flagged, "ex1_data")
    flagged.cells[i].source = "import sys  # no lab answer needs the interpreter\n" + flagged.cells[i].source
    put("flagged", flagged)
    warns = notebooks.fill_solutions(release, source, {"ex1_data": reference.cells[cell_index(reference, "ex1_data")].source
                                                       + "\nimport warnings\nwarnings.warn('harmless')"})
    put("warns", warns)

    start = time.perf_counter()
    results = {r.student: r for r in grading.grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)}
    return course, results, time.perf_counter() - start


def test_every_status_is_right_and_the_batch_went_on(batch):
    course, results, _ = batch
    full = results["ok"].max_score
    expect_graded = {
        "ok": (full, []),
        "blank": (0, []),
        "renamed": (full, ["notebook was renamed to mine.ipynb"]),
        "deleted-cell": (full - 1, ["graded cells deleted (scored 0): ex1_data_tests"]),
        "duplicated-cell": (full, ["duplicated cells removed: ex2_model_tests"]),
        "retyped-cell": (full, ["cell type changed (restored): ex3_loss_optim_tests"]),
        "edited-test": (full - 2, ["read-only cells edited (restored): ex4_training_tests"]),
        "no-timestamp": (full, ["no timestamp.txt"]),
        "bad-timestamp": (full, ["malformed timestamp.txt"]),
        "memory-hog": (None, ["an allocation hit the memory limit"]),
        "warns": (full, []),  # a warning on stderr costs nothing
    }
    for student, (score, notes) in expect_graded.items():
        r = results[student]
        assert r.status == grading.GRADED, f"{student}: {r.status_text}"
        assert r.sandbox.startswith("sandboxed") or not os.environ.get("COURSE_REQUIRE_SANDBOX"), r.sandbox
        if score is not None:
            assert r.score == score, f"{student}: {r.score} != {score} ({r.cells})"
        for note in notes:
            assert any(n.startswith(note) for n in r.notes), f"{student}: {note!r} not in {r.notes}"
    expect_failed = {
        "bad-json": "invalid notebook",
        "missing": "missing notebook",
        "exits": "kernel died",
        "loops": "time limit",
    }
    for student, reason in expect_failed.items():
        r = results[student]
        assert r.status == grading.FAILED and r.reason.startswith(reason), f"{student}: {r.status_text}"
    flagged = results["flagged"]
    assert flagged.status == grading.REVIEW and flagged.score == full, flagged.status_text
    assert any("imports sys" in f and "ex1_data, line 1" in f for f in flagged.review), flagged.review
    assert set(results) == set(expect_graded) | set(expect_failed) | {"flagged"}


def test_merged_gradebook_matches_results_exactly(batch):
    course, results, _ = batch
    snapshot = gradebook_snapshot(course)
    graded = {s for s, r in results.items() if r.status != grading.FAILED}
    assert set(snapshot) == graded, "a graded submission is missing from, or a failed one is in, the gradebook"
    for student in graded:
        score, max_score, cells = snapshot[student]
        assert score == results[student].score and max_score == results[student].max_score
        assert dict(cells) == {k: tuple(v) for k, v in results[student].cells.items()}
        assert layout.notebook(course, "autograded", LAB, student=student).is_file()
    for student in set(results) - graded:
        assert not (course / "autograded" / student / LAB).exists()
    for student in results:
        assert grading.read_ledger(course, LAB, student) is not None
    # the originals are untouched
    assert (course / "submitted" / "renamed" / LAB / "mine.ipynb").is_file()
    assert (course / "submitted" / "bad-timestamp" / LAB / "timestamp.txt").read_text() == "last tuesday, honest"


def test_rerun_is_idempotent_and_force_regrades(batch):
    course, results, _ = batch
    before = gradebook_snapshot(course)
    again = grading.grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)
    assert all(r.reused for r in again)
    assert gradebook_snapshot(course) == before
    regraded = grading.grade_lab(course, LAB, students=["ok", "blank", "bad-json"], workers=2, limits=LIMITS,
                                 force=True, progress=False)
    assert not any(r.reused for r in regraded)
    assert gradebook_snapshot(course) == before


def test_changed_resubmission_is_regraded(batch):
    course, results, _ = batch
    release = notebooks.read(layout.notebook(course, "release", LAB))
    source = notebooks.read(layout.notebook(course, "source", LAB))
    notebooks.write_submission(course, "blank", LAB, notebooks.fill_solutions(release, source))
    [again] = grading.grade_lab(course, LAB, students=["blank"], limits=LIMITS, progress=False)
    assert not again.reused and again.score == again.max_score
    assert gradebook_snapshot(course)["blank"][0] == again.max_score


def test_cli_prints_table_and_exports_csv(batch):
    course, results, _ = batch
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "grade", LAB, "--dir", str(course)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed: invalid notebook" in proc.stdout and "unchanged since last run" in proc.stdout
    csv = (course / "grades.csv").read_text()
    assert "ok," in csv and "bad-json" not in csv


def test_killed_run_leaves_a_consistent_gradebook_and_resumes(tmp_path):
    course, release, source = make_course(tmp_path)
    reference = notebooks.fill_solutions(release, source)
    students = [f"s{i}" for i in range(4)]
    for student in students:
        notebooks.write_submission(course, student, LAB, reference)
    cmd = [sys.executable, "-m", "coursetools.cli", "grade", LAB, "--dir", str(course), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ledger = course / grading.LEDGER_DIR / LAB
    deadline = time.time() + 300
    while time.time() < deadline and len(list(ledger.glob("*.json"))) < 1:
        time.sleep(0.2)
    family = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)  # the crash
    proc.wait()
    for child in family:  # hygiene: do not leave the orphaned worker running in the test
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    done = len(list(ledger.glob("*.json")))
    assert 1 <= done < len(students), "the kill should land mid-batch"

    snapshot = gradebook_snapshot(course)  # consistent: complete submissions only
    for student, (score, max_score, cells) in snapshot.items():
        assert all(s is not None for _, (s, _m) in cells) and score == max_score
        assert layout.notebook(course, "autograded", LAB, student=student).is_file()

    results = grading.grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)
    assert sum(r.reused for r in results) >= done
    final = gradebook_snapshot(course)
    assert set(final) == set(students)
    assert all(score == max_score for score, max_score, _ in final.values())
    assert not list((course / "autograded").glob("*/.*incoming"))


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server on loopback, in a temporary data directory."""
    bindir = _postgres_bin()
    if bindir is None:
        if os.environ.get("COURSE_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL server binaries not found (install Debian's postgresql)")
        pytest.skip("PostgreSQL server not installed")
    data = Path(tempfile.mkdtemp(prefix="course-pg-"))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(data, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = lambda *a: subprocess.run(as_user + list(a), check=True, capture_output=True, text=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust")
    run(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w", "start",
        "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "course")
        yield f"postgresql://postgres@127.0.0.1:{port}/course"
    finally:
        subprocess.run(as_user + [str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_postgresql_gradebook(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv("COURSE_DB_URL", postgres_url)
    course, release, source = make_course(tmp_path)  # generate_assignment writes to PostgreSQL
    assert nbgrader_ops.db_url(course) == postgres_url
    assert not (course / "gradebook.db").exists()
    notebooks.write_submission(course, "ada", LAB, notebooks.fill_solutions(release, source))
    notebooks.write_submission(course, "bob", LAB, release)
    notebooks.write_submission(course, "cyd", LAB, release)
    (course / "submitted" / "cyd" / LAB / f"{LAB}.ipynb").write_text("garbage")
    results = {r.student: r for r in grading.grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)}
    assert results["ada"].score == results["ada"].max_score > 0
    assert results["bob"].score == 0 and results["cyd"].status == grading.FAILED
    snapshot = gradebook_snapshot(course)
    assert set(snapshot) == {"ada", "bob"} and snapshot["ada"][0] == results["ada"].max_score
    before = snapshot
    grading.grade_lab(course, LAB, workers=2, limits=LIMITS, force=True, progress=False)
    assert gradebook_snapshot(course) == before
    nbgrader_ops.run(course, "export")
    assert "ada" in (course / "grades.csv").read_text()


def test_review_decision_stands_and_reaches_the_csv(batch):
    course, results, _ = batch
    cli = [sys.executable, "-m", "coursetools.cli"]
    listing = subprocess.run(cli + ["review", LAB, "--dir", str(course)], capture_output=True, text=True, timeout=300)
    assert "flagged" in listing.stdout and "awaiting a decision" in listing.stdout and "imports sys" in listing.stdout
    subprocess.run(cli + ["review", LAB, "--dir", str(course), "--zero", "flagged"], check=True, capture_output=True,
                   timeout=300)
    subprocess.run(cli + ["export", "--dir", str(course)], check=True, capture_output=True, timeout=300)
    row = next(line for line in (course / "grades.csv").read_text().splitlines() if ",flagged," in line)
    assert row.endswith(",graded (zeroed)") and ",0.0," in row, row
    [again] = grading.grade_lab(course, LAB, students=["flagged"], limits=LIMITS, force=True, progress=False)
    assert again.decision == "zeroed" and again.status == grading.GRADED and again.score == 0


def test_gradebook_changed_behind_the_graders_back_is_refused(batch):
    from nbgrader.api import Gradebook

    course, results, _ = batch
    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        grade = gb.find_grade("ex2_model_tests", LAB, LAB, "bad-timestamp")
        grade.auto_score = 0.0
        gb.db.commit()
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "export", "--dir", str(course)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "bad-timestamp:" in proc.stdout, proc.stdout + proc.stderr
    with pytest.raises(Exception, match="no longer match"):
        grading.grade_lab(course, LAB, students=["ok"], limits=LIMITS, progress=False)
    grading.grade_lab(course, LAB, students=["bad-timestamp"], limits=LIMITS, force=True, progress=False)  # repair
    subprocess.run([sys.executable, "-m", "coursetools.cli", "export", "--dir", str(course)], check=True,
                   capture_output=True, timeout=300)


def _processes_mentioning(text: str) -> list:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(text in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def test_a_dead_worker_is_replaced_and_its_submission_requeued(tmp_path):
    """Kill a pool worker while it grades: the pool is rebuilt, nothing is recorded as crashed."""
    import threading

    course, release, source = make_course(tmp_path)
    for student in ("p1", "p2", "p3"):
        notebooks.write_submission(course, student, LAB, notebooks.fill_solutions(release, source))
    box = {}
    thread = threading.Thread(target=lambda: box.update(results=grading.grade_lab(
        course, LAB, workers=2, limits=LIMITS, progress=False)))
    thread.start()
    def mine(p):
        try:
            return p.parent().parent().pid == os.getpid()
        except (AttributeError, psutil.NoSuchProcess):
            return False

    grading_proc = _wait_for(lambda: [p for p in _processes_mentioning("autograde") if mine(p)])
    assert grading_proc, "no nbgrader autograde process appeared"
    worker = grading_proc[0].parent()
    worker.kill()  # the pool worker itself dies (its nbgrader and sandbox die with it)
    thread.join(600)
    results = box["results"]
    assert [r.status for r in results] == [grading.GRADED] * 3, [r.status_text for r in results]
    assert all(r.score == r.max_score for r in results)


def test_ctrl_c_leaves_no_scratch_and_no_processes(tmp_path):
    course, release, source = make_course(tmp_path)
    for student in ("c1", "c2"):
        notebooks.write_submission(course, student, LAB, notebooks.fill_solutions(release, source))
    proc = subprocess.Popen([sys.executable, "-m", "coursetools.cli", "grade", LAB, "--dir", str(course),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: [p for p in _processes_mentioning("ipykernel_launcher")
                              if f"grade-{LAB}-{proc.pid}-" in " ".join(p.cmdline())]), "no kernel started"
    proc.send_signal(signal.SIGINT)
    proc.wait(120)
    assert not list(Path(tempfile.gettempdir()).glob(f"grade-{LAB}-{proc.pid}-*")), "scratch course left behind"
    assert _wait_for(lambda: not _processes_mentioning(f"grade-{LAB}-{proc.pid}-"), 60), "processes survived Ctrl-C"
