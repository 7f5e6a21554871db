"""The nbgrader exchange round trip with the course's configuration, and submissions copied by
hand: release -> fetch -> submit (two students, each with their own HOME and the student kit's
nbgrader config) -> collect -> `course grade` -> generate_feedback -> release_feedback ->
fetch_feedback, in a temporary exchange; a hand-copied submission in the same lab must not
stop release_feedback."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coursetools import grading, layout, nbgrader_ops, notebooks
from coursetools.grading import merge, submission
from coursetools.student_kit import write_kit
from conftest import ROOT, make_grading_course

LAB = layout.labs(ROOT)[0]
EXCHANGE_STUDENTS = {"ada": "first exercise", "bob": "blank"}
HAND_COPIED = "cyd"


def first_exercise_only(release, source):
    """The release with only its first exercise answered: points earned without the cost of
    grading a whole reference (the training loop)."""
    first, *rest = cells = notebooks.solution_cells(release)
    return notebooks.fill_solutions(release, source, {g: cells[g].source for g in rest})


def student_env(home: Path) -> dict:
    """A student's own HOME (nbgrader's submission cache lives there), with no instructor
    settings: their nbgrader reads only the kit's config from ~/.jupyter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_", "COURSE_"))}
    return env | {"HOME": str(home)}


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    base = tmp_path_factory.mktemp("exchange")
    exchange = base / "exchange"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_EXCHANGE", str(exchange))  # the instructor's side: nbgrader_config.py reads it
        course, release, source = make_grading_course(base / "course", LAB)
        write_kit(course, base / "kit", [LAB])  # students' exchange default: the instructor's
        nbgrader_ops.run(course, "release_assignment", LAB)
        work = {}
        for student, kind in EXCHANGE_STUDENTS.items():
            home = base / student
            (home / ".jupyter").mkdir(parents=True)
            (home / ".jupyter" / "nbgrader_config.py").write_text((base / "kit" / "nbgrader_config.py").read_text())
            work[student] = home / "work"
            work[student].mkdir()
            nbgrader_ops.run(work[student], "fetch_assignment", LAB, env=student_env(home))
            fetched = work[student] / LAB / f"{LAB}.ipynb"
            if kind == "first exercise":
                notebooks.write(first_exercise_only(notebooks.read(fetched), source), fetched)
            nbgrader_ops.run(work[student], "submit", LAB, "--student", student, env=student_env(home))
        nbgrader_ops.run(course, "collect", LAB)
        notebooks.write_submission(course, HAND_COPIED, LAB, release)
        proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "grade", LAB, "--dir", str(course)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        nbgrader_ops.run(course, "generate_feedback", LAB)
        released = nbgrader_ops.run(course, "release_feedback", LAB)
        for student in EXCHANGE_STUDENTS:
            nbgrader_ops.run(work[student], "fetch_feedback", LAB, "--student", student, env=student_env(base / student))
    return course, exchange, work, released


def score_in(html: str) -> tuple[float, float]:
    match = re.search(r"Score:\s*([\d.]+)\s*/\s*([\d.]+)", html)
    assert match, "no score in the feedback page"
    return float(match.group(1)), float(match.group(2))


@pytest.mark.e2e
@pytest.mark.xdist_group("exchange")
def test_each_student_fetches_their_own_feedback(round_trip):
    course, exchange, work, _ = round_trip
    graded = {s: grading.read_ledger(course, LAB, s) for s in (*EXCHANGE_STUDENTS, HAND_COPIED)}
    for student, r in graded.items():
        assert r.status == grading.GRADED, f"{student}: {r.status_text}"
        assert r.sandbox.startswith("sandboxed") or not os.environ.get("COURSE_REQUIRE_SANDBOX"), r.sandbox
    assert graded["ada"].score > 0 == graded["bob"].score
    for student in EXCHANGE_STUDENTS:
        [page] = (work[student] / LAB / "feedback").glob(f"*/{LAB}.html")  # in the student's own folder
        assert score_in(page.read_text()) == (graded[student].score, graded[student].max_score), student
        # released under the secret nbgrader's submit made, which course grade carried through
        secret = (course / "submitted" / student / LAB / submission.SECRET_FILE).read_text()
        assert (course / "autograded" / student / LAB / submission.SECRET_FILE).read_text() == secret


@pytest.mark.e2e
@pytest.mark.xdist_group("exchange")
def test_hand_copied_submission_gets_what_release_feedback_needs(round_trip):
    from nbgrader.utils import notebook_hash

    course, exchange, _, released = round_trip
    assert sorted(p.name for p in (course / "submitted" / HAND_COPIED / LAB).iterdir()) == \
        [f"{LAB}.ipynb", "timestamp.txt"]  # the README's method, left untouched
    for step in ("autograded", "feedback"):
        assert (course / step / HAND_COPIED / LAB / "timestamp.txt").is_file()
    secret = (course / "feedback" / HAND_COPIED / LAB / submission.SECRET_FILE).read_text()
    assert re.fullmatch(r"[0-9a-f]{128}", secret)
    assert f"Releasing feedback for student '{HAND_COPIED}'" in released
    assert (course / "autograded" / HAND_COPIED / LAB / submission.SECRET_FILE).read_text() == secret
    page = f"{notebook_hash(secret=secret, notebook_id=LAB)}.html"
    assert (exchange / nbgrader_ops.course_id(course) / "feedback" / page).is_file()


def test_secret_is_kept_when_valid_and_made_otherwise(tmp_path):
    """A secret from nbgrader's submit survives exactly (students find feedback by its hash);
    a missing or malformed one is replaced by a fresh one, the malformed with a note."""
    notes = []
    (tmp_path / submission.SECRET_FILE).write_text("ab12" * 32)
    assert submission.read_secret(tmp_path, notes) == "ab12" * 32 and not notes
    (tmp_path / submission.SECRET_FILE).write_text("../../etc/passwd\n" * 100)
    made = submission.read_secret(tmp_path, notes)
    assert re.fullmatch(r"[0-9a-f]{128}", made) and notes and "malformed" in notes[0]
    (tmp_path / submission.SECRET_FILE).unlink()
    assert submission.read_secret(tmp_path, notes) != made


def test_autograded_copy_without_timestamp_gets_one(tmp_path):
    """release_feedback reads every feedback folder's timestamp.txt: a submission graded
    without one gets the grading time in its autograded copy (generate_feedback carries it on)."""
    graded = tmp_path / "scratch"
    graded.mkdir()
    (graded / f"{LAB}.ipynb").write_text("{}")
    (graded / submission.SECRET_FILE).write_text("ab" * 64)
    result = grading.Result("dan", LAB, grading.GRADED, autograded_dir=str(graded))
    merge.install_autograded(tmp_path, result)
    final = tmp_path / "autograded" / "dan" / LAB
    assert sorted(p.name for p in final.iterdir()) == sorted([f"{LAB}.ipynb", "timestamp.txt", submission.SECRET_FILE])
    submission.read_timestamp(final, notes := [])
    assert not notes, notes
