"""The fidelity harness's own logic: case files are validated and outcomes judged strictly,
so a typo cannot make a case vacuous."""
import pytest

from coursetools import fidelity
from coursetools.fidelity import Case, CaseFileError


def write(tmp_path, text, lab="labX"):
    (tmp_path / f"{lab}.toml").write_text(text)
    return tmp_path


def test_builtin_cases_come_first(tmp_path):
    cases = fidelity.load_cases("missing", cases_dir=tmp_path)
    assert [(c.name, c.kind) for c in cases] == [("reference", "reference"), ("blank", "blank")]


def test_valid_file_loads(tmp_path):
    write(tmp_path, '''
[[case]]
name = "m1"
kind = "mutant"
lose = ["ex1_tests"]
may_lose = ["ex2_tests"]
message = "shape \\\\(4,\\\\)"
replace.ex1 = "x = 1"

[[case]]
name = "v1"
kind = "variant"
replace.ex1 = "x = 2"
''')
    cases = fidelity.load_cases("labX", cases_dir=tmp_path)
    assert [c.name for c in cases] == ["reference", "blank", "m1", "v1"]
    assert cases[2].replace == {"ex1": "x = 1"} and cases[2].may_lose == ["ex2_tests"]
    assert cases[2].student == "case-m1" and cases[2].message == r"shape \(4,\)"


@pytest.mark.parametrize("body, match", [
    ('[[case]]\nname = "a"\nkind = "mutant"\nreplace.ex1 = "x"\n', "must lose"),
    ('[[case]]\nname = "a"\nkind = "oops"\nreplace.ex1 = "x"\n', "kind must be"),
    ('[[case]]\nname = "a"\nkind = "variant"\n', "replace"),
    ('[[case]]\nname = "a"\nkind = "variant"\nlose = ["t"]\nreplace.ex1 = "x"\n', "cannot list"),
    ('[[case]]\nname = "reference"\nkind = "variant"\nreplace.ex1 = "x"\n', "unique name"),
    ('[[case]]\nname = "a"\nkind = "variant"\nreplce.ex1 = "x"\n', "unknown keys"),
    ('[[case]]\nname = "a"\nkind = "mutant"\nlose = ["t"]\nmessage = "(("\nreplace.ex1 = "x"\n', "not a valid regular"),
    ('[[case]]\nname = "a"\nkind = "variant"\nmessage = "x"\nreplace.ex1 = "x"\n', "lose or a message"),
    ('[[case]\n', "not valid TOML"),
])
def test_malformed_files_are_refused(tmp_path, body, match):
    write(tmp_path, body)
    with pytest.raises(CaseFileError, match=match):
        fidelity.load_cases("labX", cases_dir=tmp_path)


def test_unknown_cell_names_are_refused():
    case = Case("m", "mutant", replace={"ex9": "x"}, lose=["ex1_tests"])
    with pytest.raises(CaseFileError, match="no solution cell"):
        fidelity.check_case_names(case, {"ex1"}, {"ex1_tests"})
    case = Case("m", "mutant", replace={"ex1": "x"}, lose=["ex1_test"])
    with pytest.raises(CaseFileError, match="no graded cell"):
        fidelity.check_case_names(case, {"ex1"}, {"ex1_tests"})


CELLS_FULL = {"a": (1.0, 1.0), "b": (2.0, 2.0), "c": (1.0, 1.0)}


def test_judge_reference_variant_and_blank():
    assert fidelity.judge(Case("r", "reference"), CELLS_FULL) == []
    assert fidelity.judge(Case("v", "variant"), {**CELLS_FULL, "b": (1.0, 2.0)}) == ["lost points in b (1/2)"]
    zero = {k: (0.0, m) for k, (_, m) in CELLS_FULL.items()}
    assert fidelity.judge(Case("b", "blank"), zero) == []
    assert fidelity.judge(Case("b", "blank"), {**zero, "c": (1.0, 1.0)}) == ["scored in c (1/1)"]


def test_judge_mutant_caught_missed_and_over_penalised():
    mutant = Case("m", "mutant", lose=["a"], may_lose=["b"])
    assert fidelity.judge(mutant, {**CELLS_FULL, "a": (0.0, 1.0)}) == []
    assert fidelity.judge(mutant, {**CELLS_FULL, "a": (0.0, 1.0), "b": (0.0, 2.0)}) == []
    assert fidelity.judge(mutant, CELLS_FULL) == ["not caught: a kept full marks"]
    assert fidelity.judge(mutant, {**CELLS_FULL, "a": (0.0, 1.0), "c": (0.0, 1.0)}) == [
        "over-penalised: lost points in c, which it should not affect"]


def test_groups_merge_into_one_submission(tmp_path):
    write(tmp_path, '''
[[case]]
name = "m1"
kind = "mutant"
group = "g"
lose = ["ex1_tests"]
replace.ex1 = "x = 1"

[[case]]
name = "alone"
kind = "mutant"
lose = ["ex1_tests"]
replace.ex1 = "x = 3"

[[case]]
name = "m2"
kind = "mutant"
group = "g"
lose = ["ex2_tests"]
may_lose = ["ex3_tests"]
replace.ex2 = "y = 2"
''')
    cases = fidelity.load_cases("labX", cases_dir=tmp_path)
    assert [c.name for c in cases] == ["reference", "blank", "g[m1, m2]", "alone"]
    g = cases[2]
    assert g.members == ["m1", "m2"] and g.size == 2 and cases[3].size == 1
    assert len(fidelity.load_cases("labX", cases_dir=tmp_path, merge=False)) == 5
    assert g.replace == {"ex1": "x = 1", "ex2": "y = 2"}
    assert g.lose == ["ex1_tests", "ex2_tests"] and g.may_lose == ["ex3_tests"]
    # a combined mutant is caught only if every member's cells lose points
    assert fidelity.judge(g, {"ex1_tests": (0.0, 1.0), "ex2_tests": (1.0, 1.0), "ex3_tests": (1.0, 1.0)}) == [
        "not caught: ex2_tests kept full marks"]


@pytest.mark.parametrize("second, match", [
    ('kind = "variant"\nreplace.ex2 = "y"', "mixes"),
    ('kind = "mutant"\nlose = ["t"]\nreplace.ex1 = "y"', "both replace"),
    ('kind = "mutant"\ntier = "extended"\nlose = ["u"]\nreplace.ex2 = "y"', "mixes tiers"),
])
def test_bad_groups_are_refused(tmp_path, second, match):
    write(tmp_path, f'''
[[case]]
name = "a"
kind = "mutant"
group = "g"
lose = ["t"]
replace.ex1 = "x"

[[case]]
name = "b"
group = "g"
{second}
''')
    with pytest.raises(CaseFileError, match=match):
        fidelity.load_cases("labX", cases_dir=tmp_path)


def _traceback(*frames, error="CheckFailed: y has shape (4,)"):
    """An IPython 8+ traceback, coloured as in autograded notebooks: the cell frame, then files."""
    lines = ["\x1b[31m---------------------------------------------------------------------------\x1b[39m",
             "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[4]\x1b[39m\x1b[32m, line 5\x1b[39m\n----> 5 check(y)"]
    lines += [f"\x1b[36mFile \x1b[39m\x1b[32m{path}:98\x1b[39m, in \x1b[36mfunc\x1b[39m\x1b[34m(a, b)\x1b[39m\n   98 x"
              for path in frames]
    return lines + [f"\x1b[31m{error}\x1b[39m"]


def test_raw_library_tracebacks_are_told_from_the_courses_messages():
    assert not fidelity.raised_in_library(_traceback())  # raised by the test cell itself
    assert not fidelity.raised_in_library(_traceback("/work/main/helpers/checks.py"))
    assert fidelity.raised_in_library(_traceback("/work/main/helpers/checks.py",
                                                 "/venv/lib/python3.11/site-packages/torch/nn/functional.py"))
    assert not fidelity.raised_in_library(_traceback("/venv/site-packages/torch/nn/modules/module.py",
                                                     "/course/helpers/checks.py"))
    assert not fidelity.raised_in_library([])


def _graded_notebook(path, cells):
    """An autograded notebook: (grade id, source, error output or None) per graded cell."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    for grade_id, source, error in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "points": 1}
        if error:
            ename, evalue, frames, line = error
            cell.outputs = [nbformat.v4.new_output("error", ename=ename, evalue=evalue,
                                                   traceback=[t.replace("line 5", f"line {line}") for t in
                                                              _traceback(*frames, error=f"{ename}: {evalue}")])]
        nb.cells.append(cell)
    nbformat.write(nb, str(path))
    return path


TEST_CELL = "check_a()\ncheck_b()\n### BEGIN HIDDEN TESTS\ncheck_hidden()\n### END HIDDEN TESTS"


def test_failures_say_where_a_cell_stopped_and_who_raised(tmp_path):
    path = _graded_notebook(tmp_path / "nb.ipynb", [
        ("ex1_tests", TEST_CELL, ("CheckFailed", "y has shape (4,); expected (4, 1).", ["/c/helpers/checks.py"], 2)),
        ("ex2_tests", TEST_CELL, ("RuntimeError", "mat1 and mat2 shapes cannot be multiplied", ["/t/torch/f.py"], 4)),
        ("ex3_tests", TEST_CELL, None),
    ])
    found = fidelity.read_failures(path, {"ex1_tests", "ex2_tests"})
    assert set(found) == {"ex1_tests", "ex2_tests"}
    (first, raw1), (second, raw2) = found["ex1_tests"], found["ex2_tests"]
    assert (first.where, raw1, first.ename) == ("visible", False, "CheckFailed")
    assert (second.where, raw2) == ("hidden", True)
    assert fidelity.read_failures(tmp_path / "missing.ipynb", {"ex1_tests"}) == {}


def _failure(ename, message, where="visible", raw=False):
    from coursetools.report.failures import CellFailure

    return CellFailure("error", ename, message, 1, where), raw


ORDER = ["ex1_tests", "ex2_tests", "ex3_tests"]


def test_messages_are_judged_on_the_first_lost_lose_cell():
    mutant = Case("m", "mutant", lose=["ex2_tests", "ex1_tests"], message=r"shape \(4,\)")
    cells = {"ex1_tests": (0.0, 1.0), "ex2_tests": (0.0, 1.0), "ex3_tests": (1.0, 1.0)}
    good = {"ex1_tests": _failure("CheckFailed", "y has shape (4,)"), "ex2_tests": _failure("NameError", "x")}
    assert fidelity.judge_messages(mutant, cells, ORDER, good) == ([], 1)  # ex1 comes first in the notebook
    raw = {"ex1_tests": _failure("RuntimeError", "y has shape (4,)", raw=True)}
    problems, met = fidelity.judge_messages(mutant, cells, ORDER, raw)
    assert met == 0 and "raw library traceback" in problems[0]
    wrong = {"ex1_tests": _failure("CheckFailed", "loss_values has 0 entries")}
    assert "does not match" in fidelity.judge_messages(mutant, cells, ORDER, wrong)[0][0]
    assert "no error was shown" in fidelity.judge_messages(mutant, cells, ORDER, {})[0][0]
    uncaught = {**cells, "ex1_tests": (1.0, 1.0), "ex2_tests": (1.0, 1.0)}
    assert fidelity.judge_messages(mutant, uncaught, ORDER, {}) == ([], 0)  # judge() reports that
    silent = Case("s", "mutant", lose=["ex1_tests"])
    assert fidelity.judge_messages(silent, cells, ORDER, raw) == ([], 0)  # no message declared


def test_group_members_keep_their_own_message_and_visibility():
    (g,) = fidelity.merge_groups([
        Case("early", "mutant", group="g", lose=["ex1_tests"], may_lose=["ex3_tests"], message="AND",
             replace={"ex1": "x = 1"}),
        Case("late", "mutant", group="g", lose=["ex3_tests"], message="zero_grad", replace={"ex3": "y = 2"})])
    assert g.members == ["early", "late"] and [u.message for u in g.units] == ["AND", "zero_grad"]
    cells = {"ex1_tests": (0.0, 1.0), "ex2_tests": (1.0, 1.0), "ex3_tests": (0.0, 1.0)}
    failures = {"ex1_tests": _failure("AssertionError", "y is the truth table of AND"),
                "ex3_tests": _failure("CheckFailed", "never calls optimizer.zero_grad()", where="hidden")}
    problems, met = fidelity.judge_messages(g, cells, ORDER, failures)
    assert problems == [] and met == 2
    outcome = fidelity.Outcome(g, cells, fidelity.judge(g, cells), visibly_lost={"ex1_tests"}, messages_met=met)
    assert outcome.agrees and outcome.caught_visibly == 1  # "late" failed only in hidden tests


def test_strip_hidden_tests_keeps_the_visible_checks():
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(TEST_CELL + "\nafter_hidden()")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "ex1_tests", "points": 1}
    plain = nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\nnot a graded cell")
    nb.cells = [cell, plain]
    fidelity.strip_hidden_tests(nb)
    assert nb.cells[0].source == "check_a()\ncheck_b()\nafter_hidden()"
    assert nb.cells[1].source.startswith("### BEGIN HIDDEN TESTS")


def test_summary_counts_members_visibility_and_messages():
    single = Case("m", "mutant", lose=["ex1_tests"], message="x")
    group = Case("g[a, b]", "mutant", parts=[Case("a", "mutant", lose=["ex2_tests"], message="y"),
                                              Case("b", "mutant", lose=["ex3_tests"])])
    lost = {"ex1_tests": (0.0, 1.0), "ex2_tests": (0.0, 1.0), "ex3_tests": (0.0, 1.0)}
    outcomes = [fidelity.Outcome(Case("reference", "reference"), {"ex1_tests": (1.0, 1.0)}, []),
                fidelity.Outcome(Case("blank", "blank"), {"ex1_tests": (0.0, 1.0)}, []),
                fidelity.Outcome(single, lost, [], visibly_lost={"ex1_tests"}, messages_met=1),
                fidelity.Outcome(group, lost, [], message_problems=["message of a in ex2_tests: ..."],
                                 visibly_lost={"ex2_tests", "ex3_tests"})]
    s = fidelity.summary("labX", outcomes)
    assert (s["mutants_caught"], s["mutants"], s["caught_visibly"]) == (3, 3, 3)
    assert (s["messages_met"], s["messages"]) == (1, 2) and len(s["disagreements"]) == 1
    report = fidelity.format_report([s])
    assert "caught visibly" in report and "messages met" in report and "DISAGREES" in report


def test_extended_tier_is_left_to_course_fidelity(tmp_path):
    """CI's fidelity test loads the core tier; `course fidelity` loads every case."""
    write(tmp_path, '''
[[case]]
name = "cheap"
kind = "mutant"
lose = ["ex1_tests"]
replace.ex1 = "x = 1"

[[case]]
name = "long-training"
kind = "variant"
tier = "extended"
replace.ex2 = "y = 2"
''')
    names = lambda **kw: [c.name for c in fidelity.load_cases("labX", cases_dir=tmp_path, **kw)]  # noqa: E731
    assert names() == ["reference", "blank", "cheap", "long-training"]
    assert names(tiers=("core",)) == ["reference", "blank", "cheap"]
    write(tmp_path, '[[case]]\nname = "x"\nkind = "variant"\ntier = "nightly"\nreplace.ex1 = "x"\n')
    with pytest.raises(CaseFileError, match="tier must be one of"):
        fidelity.load_cases("labX", cases_dir=tmp_path)
