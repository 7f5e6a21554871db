"""`course report`: the class report reads what was planted, groups failure reasons the way an
instructor would count them, locates failures in visible or hidden tests, never shows hidden
test code, and is one offline HTML file.

The class is synthesised (no kernels): lab 01's assignment is generated once with nbgrader,
then 32 students get gradebook rows (nbgrader's Gradebook API), ledger entries, and
autograded notebooks made from the release notebook whose failed test cells carry error
outputs with IPython-style tracebacks (which, like real ones, quote the hidden tests around
the failing line)."""
import json
import os
import re
import warnings
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path

import markupsafe
import numpy as np
import pandas as pd
import pytest

from coursetools import build, layout, nbgrader_ops
from coursetools.report import failures, items, messages, write_reports
from conftest import ROOT

# one worker builds the class once (module-scoped fixtures) when the suite runs with xdist
pytestmark = pytest.mark.xdist_group("report")
LAB = "lab01_perceptron"
DUE = datetime(2026, 3, 1, 12, 0)
HINT = " Hint: one label per row, as a column ([[a], [b], ...] or y.unsqueeze(1)), so it matches the model's (4, 1) output."


# ---------------------------------------------------------------- unit: tracebacks and hidden lines

# The start of a real error output (nbgrader autograde of lab 01, IPython 9): the failing line
# is visible (11), the context below it quotes the hidden tests.
REAL_TRACEBACK = [
    "\u001b[31m---------------------------------------------------------------------------\u001b[39m",
    "\u001b[31mCheckFailed\u001b[39m                               Traceback (most recent call last)",
    "\u001b[36mCell\u001b[39m\u001b[36m \u001b[39m\u001b[32mIn[17]\u001b[39m\u001b[32m, line 11\u001b[39m\n\u001b[32m     10\u001b[39m check_type("
    "loaded_model, Perceptron)\n\u001b[32m---> \u001b[39m\u001b[32m11\u001b[39m check_same_outputs(model, loaded_model, X)\n"
    "\u001b[32m     12\u001b[39m \u001b[38;5;66;03m### BEGIN HIDDEN TESTS\u001b[39;00m\n\u001b[32m     13\u001b[39m saved = "
    "check_state_dict_file(MODEL_SAVE_PATH, \u001b[33m\"the saved model\"\u001b[39m)\n",
    "\u001b[36mFile \u001b[39m\u001b[32m/work/main/helpers/checks.py:55\u001b[39m, in \u001b[36m_fail\u001b[39m\u001b[34m(message, hint)\u001b[39m\n"
    "\u001b[32m---> \u001b[39m\u001b[32m55\u001b[39m     raise CheckFailed(message)\n",
]


def test_failing_line_reads_every_ipython_traceback_style():
    assert failures.failing_line(REAL_TRACEBACK) == 11
    assert failures.failing_line(["ValueError   Traceback", "Input In [4], in <cell line: 7>()\n      6 a\n----> 7 b"]) == 7
    old = ["ValueError    Traceback (most recent call last)",
           "<ipython-input-4-1a2b3c4d5e> in <module>\n      2 x = 1\n----> 3 f(x)\n",
           "<ipython-input-2-ffffffffff> in f(x)\n----> 9     raise ValueError(x)\n"]
    assert failures.failing_line(old) == 3
    # the outermost cell frame is the test cell even when a function from another cell raised
    nested = ["Cell In[9], line 4\n----> 4 helper()", "Cell In[3], line 2, in helper()\n----> 2 raise E"]
    assert failures.failing_line(nested) == 4
    assert failures.failing_line(["SyntaxError: invalid syntax"]) is None


def test_hidden_lines_follow_nbgrader_delimiters_and_ipython_numbering():
    source = "\n".join(["check_a()",                    # 1 visible
                        "### BEGIN HIDDEN TESTS",       # 2
                        "check_b()",                    # 3 hidden
                        "### END HIDDEN TESTS",         # 4
                        "check_c()",                    # 5 visible again
                        "### BEGIN HIDDEN TESTS",       # 6
                        "check_d()"])                   # 7 hidden, region never closed
    assert failures.hidden_lines(source) == {2, 3, 4, 6, 7}
    assert [failures.where(n, source) for n in (1, 3, 5, 7)] == ["visible", "hidden", "visible", "hidden"]
    assert failures.where(None, source) == failures.where(99, source) == "unknown"
    # IPython drops leading blank lines before numbering: its line 2 is the source's line 4
    padded = "\n  \n" + "check_a()\n### BEGIN HIDDEN TESTS\ncheck_b()\n### END HIDDEN TESTS"
    assert failures.source_line(2, padded) == 4
    assert failures.where(1, padded) == "visible" and failures.where(3, padded) == "hidden"
    assert failures.hidden_source(source) == ["check_b()", "check_d()"]


def test_cell_failure_prefers_errors_then_stderr():
    source = "check_a()\n### BEGIN HIDDEN TESTS\ncheck_b()\n### END HIDDEN TESTS"
    error = {"output_type": "error", "ename": "\x1b[31mCheckFailed\x1b[39m", "evalue": "b is 3; expected 4.",
             "traceback": ["Cell In[5], line 3\n----> 3 check_b()"]}
    stderr = {"output_type": "stream", "name": "stderr", "text": "\n/tmp/ipykernel_7/1.py:3: UserWarning: careful\n  check_b()\n"}
    found = failures.cell_failure({"source": source, "outputs": [stderr, error]})
    assert (found.kind, found.ename, found.message, found.line, found.where) == \
        ("error", "CheckFailed", "b is 3; expected 4.", 3, "hidden")
    found = failures.cell_failure({"source": source, "outputs": [stderr]})
    assert (found.kind, found.message) == ("stderr", "/tmp/ipykernel_7/1.py:3: UserWarning: careful")
    assert failures.cell_failure(None).kind == "missing cell"
    assert failures.cell_failure({"source": source, "outputs": []}).kind == "no error"


# ---------------------------------------------------------------- unit: messages

def test_messages_differing_only_in_values_share_a_pattern():
    same = ["y has shape (4,); expected (4, 1).", "y has shape (1, 4); expected (4, 1).",
            "y has shape (4, 1, 1); expected (4, 1)."]
    assert len({messages.normalise(m).pattern for m in same}) == 1
    assert messages.describe([messages.normalise(m) for m in same]) == "y has shape (…); expected (4, 1)."
    groups = [
        ["the final loss is 0.693; it should fall below 0.2.", "the final loss is 1e-05; it should fall below 0.2."],
        ["name 'X' is not defined", "name 'model' is not defined"],
        ["MODEL_SAVE_PATH is my/a.pth; expected models/x.pth.", "MODEL_SAVE_PATH is /home/s/b.pth; expected models/x.pth."],
        ["<Net object at 0x7f00aa> is not trained", "<Net object at 0x7f11bb> is not trained"],
        ["lr is [0.1, 0.1]; expected 0.5", "lr is [0.01]; expected 0.5"],
        ["predictions is [[0.0], [1.0]]; expected [[0], [1]]", "predictions is [[1.0], [1.0]]; expected [[0], [1]]"],
    ]
    for group in groups:
        assert len({messages.normalise(m).pattern for m in group}) == 1, group
    apart = ["y has shape (4,); expected (4, 1).", "X has shape (4,); expected (4, 1).",
             "y has dtype torch.int64; expected torch.float32.", "y has dtype torch.float64; expected torch.float32.",
             "loss_values has 0 entries; expected 2000.", "loss_values is empty."]
    assert len({messages.normalise(m).pattern for m in apart}) == len(apart)
    # a full stop is not a decimal point; apostrophes are not quotes; digits in names are not numbers
    assert messages.normalise("loss_values has 0 entries; expected 2000.").pattern == \
        "loss_values has … entries; expected …."
    assert messages.normalise("the model's output isn't float32").pattern == "the model's output isn't float32"
    assert messages.normalise("").pattern == "(no message)"


def test_redact_removes_hidden_source_lines():
    secret = 'assert n_params == 3, f"has {n_params} parameters"'
    assert messages.redact(f"warning: {secret} failed", [secret]) == "warning: [hidden test code] failed"


# ---------------------------------------------------------------- unit: item analysis

def test_item_analysis_matches_scipy_point_biserial():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    ability = rng.normal(size=40)
    scores = pd.DataFrame({f"e{i}": (ability + rng.normal(size=40) > i - 1).astype(float) for i in range(4)})
    scores["e4"] = 1.0  # everyone passed
    table = items.item_analysis(scores, {c: 1.0 for c in scores.columns})
    total = scores.sum(axis=1)
    for item in ["e0", "e1", "e2", "e3"]:
        expected = scipy_stats.pointbiserialr(scores[item], total - scores[item]).statistic
        assert table.at[item, "discrimination"] == pytest.approx(expected)
        assert table.at[item, "difficulty"] == pytest.approx(scores[item].mean())
    assert np.isnan(table.at["e4", "discrimination"]) and table.at["e4", "difficulty"] == 1.0
    assert "everyone passed" in items.verdict(1.0, float("nan"))


# ---------------------------------------------------------------- the synthetic class

def line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), start=1) if text in line)


def plan(tests: dict[str, str]) -> dict:
    """student -> {grade id: outcome}; cells not named score full marks. An outcome is
    (kind, group, detail): kind error -> detail (ename, message, line); partial / stderr /
    missing / no-notebook. ``group`` names the reason row the report must produce."""
    c1, c2, c4, c5, c6 = (tests[g] for g in ("ex1_data_tests", "ex2_model_tests", "ex4_training_tests",
                                              "ex6_evaluate_tests", "ex7_save_load_tests"))
    p = defaultdict(dict)

    def err(student, cell, group, ename, message, line):
        p[student][cell] = ("error", group, (ename, message, line))

    shape_line = line_of(c1, 'check_tensor(y, "y", shape=(4, 1)')
    for i, shape in enumerate(["(4,)", "(1, 4)", "(4, 1, 1)", "(2, 2)"] * 2, start=1):
        err(f"s{i:02d}", "ex1_data_tests", "shape", "CheckFailed", f"y has shape {shape}; expected (4, 1).{HINT}",
            shape_line)
    for i in (9, 10, 11):
        err(f"s{i:02d}", "ex1_data_tests", "dtype", "CheckFailed", "y has dtype torch.int64; expected torch.float32.",
            line_of(c1, 'check_tensor(y, "y", dtype='))
    for i in (12, 13, 14, 15):
        err(f"s{i:02d}", "ex1_data_tests", "X device", "AssertionError", f"X is on cuda:{i - 12}; move it to cpu.",
            line_of(c1, "assert X.device.type"))
    err("s16", "ex1_data_tests", "y device", "AssertionError", "y is on cuda:0; move it to cpu.",
        line_of(c1, "assert y.device.type"))

    for i, n in zip(range(1, 6), (4, 5, 7, 9, 13)):
        err(f"s{i:02d}", "ex2_model_tests", "n_params", "AssertionError",
            f"Perceptron(2, 1) has {n} parameters; expected 3 (two weights, one bias).", line_of(c2, "assert n_params == 3"))
    for i in (6, 7):
        err(f"s{i:02d}", "ex2_model_tests", "no model", "NameError", "name 'model' is not defined",
            line_of(c2, "check_type(model, Perceptron"))
    err("s08", "ex2_model_tests", "html", "ValueError",
        '<img src="http://evil.example/x.png"> & <script src="https://evil.example/x.js"></script>',
        line_of(c2, "out = check_runs(model, X"))

    for i, loss in zip(range(10, 16), (0.693, 0.412, 0.25, 0.3333, 1.5, 0.201)):
        err(f"s{i:02d}", "ex4_training_tests", "final loss", "AssertionError",
            f"the final loss is {loss:.3f}; it should fall well below 0.2.", line_of(c4, "assert loss_values[-1] < 0.2"))
    for i, n in zip((16, 17, 18), (0, 1000, 1999)):
        err(f"s{i:02d}", "ex4_training_tests", "history", "CheckFailed", f"loss_values has {n} entries; expected 2000.",
            line_of(c4, "check_history(loss_values"))
    for i in (19, 20):
        err(f"s{i:02d}", "ex4_training_tests", "recomputed", "AssertionError",
            f"the trained model's loss on X is 0.{i}1; expected < 0.2.", line_of(c4, "assert recomputed_loss < 0.2"))
    err("s21", "ex4_training_tests", "bare A", "AssertionError", "", line_of(c4, "assert recomputed_loss < 0.2"))
    err("s22", "ex4_training_tests", "bare B", "AssertionError", "", line_of(c4, "check_values((final_prob"))

    p["s23"]["ex6_evaluate_tests"] = ("stderr", "stderr", "/tmp/ipykernel_41/2231.py:7: UserWarning: slow\n  x = 1\n")
    p["s24"]["ex6_evaluate_tests"] = ("partial", "partial", 0.5)
    p["s25"]["ex6_evaluate_tests"] = ("missing", "missing", None)
    # interrupted by nbgrader's per-cell timeout, in a traceback that names no cell line
    err("s28", "ex6_evaluate_tests", "interrupted", "KeyboardInterrupt", "", None)

    for i, path in zip((1, 2, 3), ("my_models/a.pth", "out/b.pth", "/home/s03/c.pth")):
        err(f"s{i:02d}", "ex7_save_load_tests", "save path", "AssertionError",
            f"MODEL_SAVE_PATH is {path}; expected models/lab01_perceptron_or.pth.",
            line_of(c6, "assert Path(MODEL_SAVE_PATH)"))
    p["s26"]["ex7_save_load_tests"] = ("no notebook", "no notebook", None)
    return p


GRADED = [f"s{i:02d}" for i in range(1, 29)] + ["s30"]       # in the gradebook with scores


def timestamp(student: str) -> datetime:
    n = int(student[1:])
    if n <= 20:
        return datetime(2026, 2, 27, 10, 0)            # on time
    if n <= 25:
        return datetime(2026, 3, 1, 13, 0)             # one hour late
    return datetime(2026, 3, 3, 9, 0)                  # two days late


def traceback(ename: str, message: str, source: str, line: int | None) -> list[str]:
    """An error output's traceback in IPython 9's shape, with two lines of context either side
    (``line`` None: a traceback that names no cell line)."""
    if line is None:
        return [f"\x1b[31m{ename}\x1b[39m: {message}"]
    lines = source.splitlines()
    context = "\n".join(f"\x1b[32m{'---> ' if n == line else '     '}\x1b[39m\x1b[32m{n:>2}\x1b[39m {lines[n - 1]}"
                        for n in range(max(1, line - 2), min(len(lines), line + 2) + 1))
    return ["\x1b[31m" + "-" * 75 + "\x1b[39m",
            f"\x1b[31m{ename}\x1b[39m                               Traceback (most recent call last)",
            f"\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[12]\x1b[39m\x1b[32m, line {line}\x1b[39m\n{context}\n",
            f"\x1b[31m{ename}\x1b[39m: {message}"]


def score_of(outcome) -> float:
    return 0.5 if outcome[0] == "partial" else 0.0


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """Lab 01 generated once; then the planted class."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    course = build.scratch_course(ROOT, tmp_path_factory.mktemp("report") / "course")
    nbgrader_ops.run(course, "generate_assignment", LAB, "--force")
    release = json.loads(layout.notebook(course, "release", LAB).read_text())
    source = json.loads(layout.notebook(course, "source", LAB).read_text())
    meta = lambda c: c.get("metadata", {}).get("nbgrader", {})  # noqa: E731
    tests = {meta(c)["grade_id"]: "".join(c["source"]) for c in source["cells"] if meta(c).get("grade")}
    outcomes = plan(tests)
    quoted_hidden = 0

    with warnings.catch_warnings(), Gradebook(nbgrader_ops.db_url(course), nbgrader_ops.course_id(course)) as gb:
        warnings.simplefilter("ignore", SAWarning)   # nbgrader's add_submission autoflush warning
        gb.update_or_create_assignment(LAB, duedate=DUE)
        for student in [f"s{i:02d}" for i in range(1, 32)]:   # s31 is enrolled but never submits
            gb.update_or_create_student(student)
        for student in GRADED:
            submission = gb.update_or_create_submission(LAB, student, timestamp=timestamp(student))
            for nb in submission.notebooks:
                for grade in nb.grades:
                    outcome = outcomes[student].get(grade.name)
                    grade.auto_score = 1.0 if outcome is None else score_of(outcome)
                    grade.needs_manual_grade = False
        gb.db.commit()

    for student in GRADED:
        nb = json.loads(json.dumps(release))
        kept = []
        for cell in nb["cells"]:
            gid = meta(cell).get("grade_id")
            if gid in tests:
                cell["source"] = tests[gid]          # nbgrader restores test cells, hidden tests included
                cell["outputs"] = []
                outcome = outcomes[student].get(gid)
                if outcome and outcome[0] == "missing":
                    continue
                if outcome and outcome[0] == "error":
                    ename, message, line = outcome[2]
                    tb = traceback(ename, message, tests[gid], line)
                    quoted_hidden += any(s in "".join(tb) for s in failures.hidden_source(tests[gid]))
                    cell["outputs"] = [{"output_type": "error", "ename": ename, "evalue": message, "traceback": tb}]
                elif outcome and outcome[0] == "stderr":
                    cell["outputs"] = [{"output_type": "stream", "name": "stderr", "text": outcome[2]}]
            kept.append(cell)
        nb["cells"] = kept
        if outcomes[student].get("ex7_save_load_tests", ("",))[0] != "no notebook":
            path = layout.notebook(course, "autograded", LAB, student=student)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(nb))
    assert quoted_hidden >= 5, "the planted tracebacks must quote hidden tests, as real ones do"

    for student in GRADED + ["s29"]:
        status = {"s29": "failed", "s30": "needs review"}.get(student, "graded")
        entry = {"student": student, "lab": LAB, "status": status,
                 "reason": "invalid notebook (JSONDecodeError: Expecting value)" if status == "failed" else "",
                 "notes": ["no timestamp.txt (lateness unknown)"] if student == "s05" else [],
                 "score": None, "max_score": 8.0, "cells": {},
                 "timestamp": timestamp(student).strftime("%Y-%m-%d %H:%M:%S.%f UTC"),
                 "seconds": 10.0 + int(student[1:]), "digest": "0" * 16}
        if status == "needs review":
            entry["review"] = ["score changed from 3 to 6 since the last run"]
        path = course / "grading" / LAB / f"{student}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entry))
    (course / "submitted" / "s32" / LAB).mkdir(parents=True)                 # not graded yet
    for student in ("s01", "s12"):
        feedback = course / "feedback" / student / LAB / f"{LAB}.html"
        feedback.parent.mkdir(parents=True)
        feedback.write_text("<html>feedback</html>")
    return {"path": course, "tests": tests, "plan": outcomes}


@pytest.fixture(scope="module")
def full_report(course, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    [report] = write_reports(course["path"], [LAB], out)
    return report, out


def expected_exercise_counts(outcomes: dict, tests: dict) -> dict:
    counts = {}
    for gid in tests:
        c = Counter()
        for student in GRADED:
            outcome = outcomes[student].get(gid)
            if outcome is None:
                c["full"] += 1
                continue
            c["partial" if outcome[0] == "partial" else "zero"] += 1
            if outcome[0] == "error" and outcome[2][2] is not None:
                ename, message, line = outcome[2]
                c["hidden" if line in failures.hidden_lines(tests[gid]) else "visible"] += 1
            else:
                c["other"] += 1
        counts[gid] = c
    return counts


def test_exercise_counts_equal_what_was_planted(course, full_report):
    report, out = full_report
    table = pd.read_csv(out / f"{LAB}-exercises.csv").set_index("cell")
    expected = expected_exercise_counts(course["plan"], course["tests"])
    for gid, c in expected.items():
        row = table.loc[gid]
        assert row["graded"] == len(GRADED)
        assert (row["full"], row["partial"], row["zero"]) == (c["full"], c["partial"], c["zero"]), gid
        assert (row["lost_at_visible_check"], row["lost_only_to_hidden_tests"], row["lost_other"]) == \
            (c["visible"], c["hidden"], c["other"]), gid
    # spelled out for the two exercises with hidden-only losses
    assert table.loc["ex1_data_tests", ["lost_at_visible_check", "lost_only_to_hidden_tests"]].tolist() == [11, 5]
    assert table.loc["ex2_model_tests", ["lost_at_visible_check", "lost_only_to_hidden_tests"]].tolist() == [3, 5]
    assert table.loc["ex1_data_tests", "title"] == "The data"
    assert table.loc["ex1_data_tests", "exercise"] == "Exercise 1"
    assert np.isnan(table.loc["ex3_loss_optim_tests", "discrimination"])   # everyone passed
    assert table.loc["ex3_loss_optim_tests", "difficulty"] == 1.0
    assert table.loc["ex1_data_tests", "difficulty"] == pytest.approx(13 / 29, abs=1e-4)   # rounded in the CSV


def test_summary_counts_statuses_completion_and_lateness(full_report):
    report, out = full_report
    s = report.summary
    assert (s["roster"], s["submitted"], s["graded"]) == (32, 31, 29)
    assert (s["failed"], s["needs_review"], s["awaiting"], s["not_submitted"]) == (1, 1, 1, 1)
    assert s["late"] == 9                      # s21-s28 and s30 (s29 failed: no gradebook submission)
    students = pd.read_csv(out / f"{LAB}-students.csv").set_index("student")
    assert students.loc["s29", "status"] == "failed" and "JSONDecodeError" in students.loc["s29", "reason"]
    assert students.loc["s30", "status"] == "needs review" and "score changed" in students.loc["s30", "review"]
    assert students.loc["s21", "seconds_late"] == 3600
    assert students.loc["s27", "score"] == 8.0 and students.loc["s01", "score"] == 5.0
    assert students.loc["s28", "score"] == 7.0


def test_reasons_are_grouped_as_planted(course, full_report):
    report, out = full_report
    reasons = pd.read_csv(out / f"{LAB}-reasons.csv")
    planted = defaultdict(list)          # (cell, group) -> students
    for student, cells in course["plan"].items():
        for gid, outcome in cells.items():
            planted[(gid, outcome[1])].append(student)
    assert len(reasons) == len(planted), "every planted reason is one row: none merged, none split"
    for (gid, group), students in planted.items():
        rows = reasons[(reasons["cell"] == gid) & (reasons["example_student"] == min(students))]
        rows = rows[rows["students"] == len(students)]
        assert len(rows) == 1, (gid, group)
        outcome = course["plan"][min(students)][gid]
        if outcome[0] == "error" and outcome[2][2] is None:
            assert rows.iloc[0]["where"] == "unknown" and np.isnan(rows.iloc[0]["line"])
        elif outcome[0] == "error":
            line = outcome[2][2]
            assert rows.iloc[0]["line"] == line
            assert rows.iloc[0]["where"] == ("hidden" if line in failures.hidden_lines(course["tests"][gid]) else "visible")
        else:
            kind = {"partial": "no error", "missing": "missing cell"}.get(outcome[0], outcome[0])
            assert rows.iloc[0]["where"] == "unknown" and rows.iloc[0]["kind"] == kind
    shape = reasons[(reasons["cell"] == "ex1_data_tests") & (reasons["students"] == 8)].iloc[0]
    assert shape["distinct_messages"] == 4
    assert shape["reason"].startswith("y has shape (…); expected (4, 1).")
    assert reasons[reasons["cell"] == "ex1_data_tests"]["students"].tolist() == [8, 4, 3, 1]   # most frequent first
    path = reasons[(reasons["cell"] == "ex7_save_load_tests") & (reasons["students"] == 3)].iloc[0]
    assert path["reason"] == "MODEL_SAVE_PATH is <path>; expected models/lab01_perceptron_or.pth."
    bare = reasons[(reasons["cell"] == "ex4_training_tests") & (reasons["pattern"] == "(no message)")]
    assert sorted(bare["example_student"]) == ["s21", "s22"]       # same (empty) message, different checks


def test_html_is_self_contained_and_links_feedback(course, full_report):
    report, out = full_report
    html = report.files["html"].read_text()
    assert html.count('src="data:image/png;base64,') >= 4
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"<(?:script|link|iframe)\b", html, re.IGNORECASE)
    assert "&lt;script" in html                     # a student's text is escaped, not executed
    feedback = course["path"] / "feedback" / "s01" / LAB / f"{LAB}.html"
    link = Path(os.path.relpath(feedback, out)).as_posix()
    assert link.startswith("../") and f'href="{link}"' in html and (out / link).resolve() == feedback.resolve()
    assert "Exercise 1 — The data" in html


def test_hidden_test_source_never_appears(course, full_report):
    report, out = full_report
    secrets = [line for source in course["tests"].values() for line in failures.hidden_source(source) if len(line) >= 16]
    assert len(secrets) > 20
    for path in report.files.values():
        text = path.read_text()
        for line in secrets:
            assert line not in text and str(markupsafe.escape(line)) not in text, (path.name, line)


def test_students_filter(course, tmp_path):
    [report] = write_reports(course["path"], [LAB], tmp_path, students=["s01", "s09", "s31", "nobody"])
    s = report.summary
    assert (s["roster"], s["submitted"], s["graded"]) == (3, 2, 2)
    assert s["unknown_students"] == ["nobody"]
    reasons = pd.read_csv(tmp_path / f"{LAB}-reasons.csv")
    assert set(reasons["example_student"]) == {"s01", "s09"}
    assert set(pd.read_csv(tmp_path / f"{LAB}-students.csv")["student"]) == {"s01", "s09", "s31"}


def test_since_filter(course, tmp_path):
    [report] = write_reports(course["path"], [LAB], tmp_path, since=date(2026, 3, 2))
    s = report.summary
    assert s["graded"] == 4 and s["submitted"] == 5        # s26-s28, s30 graded; s29 failed
    table = pd.read_csv(tmp_path / f"{LAB}-exercises.csv").set_index("cell")
    assert table.loc["ex7_save_load_tests", "zero"] == 1   # s26, its notebook missing
    assert table.loc["ex6_evaluate_tests", "zero"] == 1    # s28, interrupted
    assert table["zero"].sum() == 2
    students = pd.read_csv(tmp_path / f"{LAB}-students.csv").set_index("student")
    assert students.loc["s01", "status"] == "before --since"


def test_cli_writes_html_csv_and_json(course, tmp_path):
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "report", "lab01", "--dir", str(course["path"]),
                           "--out", str(out), "--students", "s01,s02,s29"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2 graded, 1 failed" in proc.stdout
    for name in (f"{LAB}.html", f"{LAB}-students.csv", f"{LAB}-exercises.csv", f"{LAB}-reasons.csv", f"{LAB}.json"):
        assert (out / name).is_file(), name
    data = json.loads((out / f"{LAB}.json").read_text())
    assert data["summary"]["graded"] == 2 and len(data["exercises"]) == 8


def test_json_is_plain_json(full_report):
    report, out = full_report
    text = report.files["json"].read_text()
    assert "NaN" not in text and "<NA>" not in text and "NaT" not in text
    data = json.loads(text)
    assert data["summary"]["roster"] == 32 and data["summary"]["duedate"].startswith("2026-03-01 12:00")
    unknown = [r for r in data["reasons"] if r["kind"] != "error"]
    assert unknown and all(r["line"] is None for r in unknown)


def test_without_a_gradebook_the_ledger_scores_are_used(tmp_path):
    """A copy of the course without gradebook.db (say, a TA's): the report reads the ledger's
    scores and never creates a gradebook."""
    course = build.scratch_course(ROOT, tmp_path / "course")
    for student, cells in {"a": [1, 1, 1, 1, 1, 1, 1, 1], "b": [0, 1, 1, 1, 1, 1, 1, 0]}.items():
        ids = ["ex1_data_tests", "ex2_model_tests", "ex3_loss_optim_tests", "ex4_training_tests",
               "ex5_predict_lr_tests", "ex6_evaluate_tests", "ex7_save_load_tests", "ex8_predict_xor_tests"]
        entry = {"student": student, "lab": LAB, "status": "graded", "reason": "", "notes": [],
                 "cells": {g: [float(v), 1.0] for g, v in zip(ids, cells)}, "timestamp": None, "seconds": 12.5}
        (course / "grading" / LAB).mkdir(parents=True, exist_ok=True)
        (course / "grading" / LAB / f"{student}.json").write_text(json.dumps(entry))
    [report] = write_reports(course, [LAB], tmp_path / "out")
    assert not (course / "gradebook.db").exists()
    assert report.summary["graded"] == 2 and report.summary["mean_score"] == 7.0
    assert report.summary["has_gradebook"] is False
    table = pd.read_csv(tmp_path / "out" / f"{LAB}-exercises.csv").set_index("cell")
    assert table.loc["ex1_data_tests", "zero"] == 1 and table.loc["ex1_data_tests", "lost_other"] == 1
    assert "No gradebook found" in report.files["html"].read_text()
