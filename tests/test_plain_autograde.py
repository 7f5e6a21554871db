"""Plain `nbgrader autograde` and Formgrader's autograde button refuse in the course (they would
run student code unsandboxed), change nothing, and say what to run and why the submission was
not graded; COURSE_PLAIN_AUTOGRADE=1 lets a trusted notebook through; `course grade` is
unaffected (every grading test)."""
import os
import subprocess
import sys

import pytest

from conftest import make_grading_course
from coursetools import notebooks
from coursetools.grading import ledger

LAB = "lab01_perceptron"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    path, release, source = make_grading_course(tmp_path_factory.mktemp("plain"), LAB)
    notebooks.write_submission(path, "ada", LAB, release)
    notebooks.write_submission(path, "bob", LAB, notebooks.fill_solutions(release, source))
    # bob's earlier `course grade` verdict, and an autograded copy that must survive
    ledger.write(path, ledger.Result("bob", LAB, ledger.FAILED, reason="time limit: cell 7 ran over 60 s"))
    kept = path / "autograded" / "bob" / LAB / "kept.txt"
    kept.parent.mkdir(parents=True)
    kept.write_text("course grade's result")
    return path


def _autograde(course, *args, allow=False):
    env = {k: v for k, v in os.environ.items() if k != "COURSE_PLAIN_AUTOGRADE"}
    if allow:
        env["COURSE_PLAIN_AUTOGRADE"] = "1"
    return subprocess.run([sys.executable, "-m", "nbgrader", "autograde", LAB, *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=600)


def _gradebook_students(course):
    from nbgrader.api import Gradebook

    from coursetools import nbgrader_ops

    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        return {s.student.id for s in gb.find_assignment(LAB).submissions} if LAB in {
            a.name for a in gb.assignments} else set()


def test_plain_autograde_refuses_names_the_command_and_changes_nothing(course):
    before = _gradebook_students(course)
    proc = _autograde(course, "--student", "bob", "--force")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"course grade {LAB} --students bob --force" in out
    assert "failed: time limit: cell 7 ran over 60 s" in out, "the refusal says why course grade failed it"
    assert "COURSE_PLAIN_AUTOGRADE=1" in out
    assert (course / "autograded" / "bob" / LAB / "kept.txt").read_text() == "course grade's result"
    assert _gradebook_students(course) == before


def test_formgrader_button_gets_the_same_refusal(course):
    """Formgrader's autograde button calls NbGraderAPI.autograde in the server's process."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from coursetools import nbgrader_ops

    config = nbgrader_ops.load_config(course)
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    result = api.autograde(LAB, "bob")
    assert not result["success"]
    shown = result.get("error", "") + result.get("log", "")
    assert "course grade" in shown and "--students bob" in shown and "time limit" in shown
    assert (course / "autograded" / "bob" / LAB / "kept.txt").exists()


def test_a_trusted_notebook_can_be_autograded_plainly_on_request(course):
    proc = _autograde(course, "--student", "ada", allow=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (course / "autograded" / "ada" / LAB / f"{LAB}.ipynb").exists()
