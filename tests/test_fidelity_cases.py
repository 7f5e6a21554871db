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
replace.ex1 = "x = 1"

[[case]]
name = "v1"
kind = "variant"
replace.ex1 = "x = 2"
''')
    cases = fidelity.load_cases("labX", cases_dir=tmp_path)
    assert [c.name for c in cases] == ["reference", "blank", "m1", "v1"]
    assert cases[2].replace == {"ex1": "x = 1"} and cases[2].may_lose == ["ex2_tests"]
    assert cases[2].student == "case-m1"


@pytest.mark.parametrize("body, match", [
    ('[[case]]\nname = "a"\nkind = "mutant"\nreplace.ex1 = "x"\n', "must lose"),
    ('[[case]]\nname = "a"\nkind = "oops"\nreplace.ex1 = "x"\n', "kind must be"),
    ('[[case]]\nname = "a"\nkind = "variant"\n', "replace"),
    ('[[case]]\nname = "a"\nkind = "variant"\nlose = ["t"]\nreplace.ex1 = "x"\n', "cannot list"),
    ('[[case]]\nname = "reference"\nkind = "variant"\nreplace.ex1 = "x"\n', "unique name"),
    ('[[case]]\nname = "a"\nkind = "variant"\nreplce.ex1 = "x"\n', "unknown keys"),
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
