"""``course demo`` keeps out of the course and explains itself; ``course remove-student`` removes
one student's traces and nothing else; students get names; a quiet install. No grading here
(the end-to-end demo run is in test_e2e.py)."""
import json
import shutil
import tomllib
import warnings
from pathlib import Path

import nbformat
import pytest

from coursetools import build, cli, demo, grading, layout, nbgrader_ops, students
from conftest import ROOT

LAB = "lab01_perceptron"


def test_demo_without_dir_runs_in_a_scratch_course(monkeypatch, capsys):
    """Without --dir the demo never uses the course's gradebook: it builds a scratch course,
    says where, and grades there."""
    seen = {}

    def fake_run_demo(course, labs, log=print, workers=None):
        seen["course"] = course
        return demo.DemoResult(course, [], [], course / "grades.csv")

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    monkeypatch.chdir(ROOT)
    try:
        assert cli.main(["demo", LAB]) == 0
        course = seen["course"]
        assert course.resolve() != ROOT and ROOT not in course.resolve().parents
        assert (course / "nbgrader_config.py").is_file() and (course / "source" / LAB).is_dir()
        assert f"demo course: {course}" in capsys.readouterr().out
    finally:
        shutil.rmtree(seen.get("course", "/nonexistent"), ignore_errors=True)


def test_demo_skips_lab_without_its_data_and_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    course = build.scratch_course(ROOT, tmp_path / "course")
    lines = []
    outcome = demo.run_demo(course, ["lab08"], log=lines.append)
    why = outcome.skipped["lab08_cifar10_cnn"]
    assert "CIFAR-10" in why and "COURSE_DATA_DIR=" in why and "load_cifar10()" in why
    assert any(line.startswith("[lab08_cifar10_cnn] SKIPPED: needs CIFAR-10") for line in lines)
    assert outcome.results == [] and not (course / "gradebook.db").exists()  # nothing was graded
    table = demo.format_table(outcome.results, outcome.explanations, outcome.skipped)
    assert "skipped:" in table and "lab08_cifar10_cnn: needs CIFAR-10" in table


def test_reference_losing_points_is_explained_beside_the_table(tmp_path):
    """A reference below full marks gets a mark in the table and, below it, every cell it lost
    with the test's message (read from its autograded notebook)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("check()", metadata={"nbgrader": {
        "grade": True, "grade_id": "ex6_train_tests", "points": 2, "solution": False, "locked": True}},
        outputs=[nbformat.v4.new_output("error", ename="AssertionError",
                                        evalue="test accuracy 61.0 % < 67 %: train longer", traceback=[])])]
    path = layout.notebook(tmp_path, "autograded", LAB, student=demo.REFERENCE)
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    ref = grading.Result(demo.REFERENCE, LAB, grading.GRADED, score=6.0, max_score=8.0,
                         cells={"ex6_train_tests": [0.0, 2.0], "ex1_data_tests": [1.0, 1.0]})
    why = demo.lost_points(tmp_path, ref)
    assert why == "lost 2 of 8 points: ex6_train_tests: AssertionError: test accuracy 61.0 % < 67 %: train longer"
    table = demo.format_table([ref], {(ref.student, LAB): why})
    assert "6/8 *" in table and f"* {demo.REFERENCE} / {LAB}: {why}" in table


def test_demo_time_limits_are_generous_and_scale_with_load():
    assert demo.slowdown() >= 1.0
    assert demo.time_limit_for(LAB) >= 120
    assert demo.time_limit_for(LAB, 3.0) == pytest.approx(3 * demo.time_limit_for(LAB))
    budget = tomllib.loads((ROOT / "coursetools" / "benchmarks.toml").read_text())["lab08_cifar10_cnn"]["budget_seconds"]
    assert demo.time_limit_for("lab08_cifar10_cnn") >= 3 * budget


def make_course(tmp_path: Path) -> Path:
    """A course with two students who each submitted two labs: gradebook, folders, ledger."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission autoflush warning
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        for lab in ("lab01", "lab02"):
            gb.add_assignment(lab)
        for student in ("ada", "bob"):
            gb.add_student(student)
            for lab in ("lab01", "lab02"):
                gb.add_submission(lab, student)
                for step in students.STUDENT_FOLDERS:
                    (course / step / student / lab).mkdir(parents=True)
                    (course / step / student / lab / f"{lab}.ipynb").write_text("{}")
                entry = grading.ledger.path(course, lab, student)
                entry.parent.mkdir(parents=True, exist_ok=True)
                entry.write_text(json.dumps({"student": student, "lab": lab, "status": "graded"}))
    return course


def gradebook_state(course: Path) -> dict[str, list[str]]:
    from nbgrader.api import Gradebook

    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        return {s.id: sorted(sub.assignment.name for sub in s.submissions) for s in gb.students}


def traces(course: Path, student: str) -> list[str]:
    found = [str(p.relative_to(course)) for step in students.STUDENT_FOLDERS for p in (course / step).glob(f"{student}/*")]
    return sorted(found + [str(p.relative_to(course)) for p in (course / "grading").glob(f"*/{student}.json")])


def test_remove_student_removes_one_lab_then_the_student_and_touches_no_one_else(tmp_path):
    course = make_course(tmp_path)
    bob_before = traces(course, "bob")
    removed = students.remove_student(course, "ada", ["lab01"])
    assert "gradebook: submission of lab01" in removed and "grading/lab01/ada.json" in removed
    assert gradebook_state(course) == {"ada": ["lab02"], "bob": ["lab01", "lab02"]}
    assert traces(course, "ada") == ["autograded/ada/lab02", "feedback/ada/lab02", "grading/lab02/ada.json",
                                     "submitted/ada/lab02"]
    students.remove_student(course, "ada")
    assert gradebook_state(course) == {"bob": ["lab01", "lab02"]}
    assert traces(course, "ada") == [] and traces(course, "bob") == bob_before
    assert students.remove_student(course, "ada") == []  # again: nothing left, no error


def test_remove_student_cli_demo_students_and_refuses_paths(tmp_path, capsys):
    course = make_course(tmp_path)
    assert cli.main(["remove-student", "--dir", str(course), "../bob"]) == 2
    assert cli.main(["remove-student", "--dir", str(tmp_path / "not-a-course"), "ada"]) == 1  # no fallback
    assert cli.main(["remove-student", "--dir", str(course), "--demo", "ada"]) == 0
    out = capsys.readouterr().out
    assert f"{demo.REFERENCE}: nothing found" in out and "ada: gradebook: the student" in out
    assert gradebook_state(course) == {"bob": ["lab01", "lab02"]}


def test_names_come_from_the_roster_and_never_overwrite(tmp_path):
    from nbgrader.api import Gradebook

    course = make_course(tmp_path)
    (course / students.ROSTER).write_text("id,first_name,last_name,email\nada,Ada,Lovelace,ada@example.org\n"
                                          "bob,Robert,Roster,\n")
    with Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        gb.update_or_create_student("bob", first_name="Bob", last_name="Byron")  # set in Formgrader
        known = students.roster(course)
        for student in ("ada", "bob", "cy"):
            students.fill_names(gb, student, known.get(student))
        names = {s.id: (s.first_name, s.last_name, s.email) for s in gb.students}
    assert names == {"ada": ("Ada", "Lovelace", "ada@example.org"), "bob": ("Bob", "Byron", None),
                     "cy": (None, None, None)}


def test_every_folder_with_package_files_is_a_listed_package():
    """setuptools prints a screen of warnings for each folder of package data that is importable
    but not listed in `packages` (the `make install` noise of helpers/pretrained)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    for top in {p.split(".")[0] for p in listed}:
        for folder in [ROOT / top, *(ROOT / top).rglob("*")]:
            if not folder.is_dir() or "__pycache__" in folder.parts:
                continue
            files = [f for f in folder.iterdir() if f.is_file() and not f.name.endswith((".pyc",))]
            dotted = ".".join(folder.relative_to(ROOT).parts)
            if files:
                assert dotted in listed, f"{dotted} holds files but is not in [tool.setuptools] packages"
