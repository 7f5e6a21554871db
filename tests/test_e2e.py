"""nbgrader end to end, one scratch course directory per lab. Every lab's cases are autograded
in one batch: the reference solution scores full marks on every graded cell, the blank release
scores zero on every graded cell, every mutant in tests/fidelity/<lab>.toml loses the points it
should (and only those), every variant keeps full marks, and no test cell of the reference
writes to stderr."""
import os
import re
import subprocess
import sys

import pytest

from coursetools import demo, fidelity, layout, nbgrader_ops, notebooks
from coursetools.report import failures
from conftest import LABS, ROOT, skip_if_data_missing

pytestmark = pytest.mark.e2e


def visible_run_wanted(lab: str) -> bool:
    """FIDELITY_VISIBLE_RUN=lab01,lab03 (or "all") also grades those labs' mutants without hidden
    tests; by default what the visible checks caught is read from the failing lines (free)."""
    wanted = {w.strip() for w in os.environ.get("FIDELITY_VISIBLE_RUN", "").split(",") if w.strip()}
    return "all" in wanted or any(lab.startswith(w) for w in wanted)


def tiers_wanted() -> tuple[str, ...]:
    """CI grades the core cases; FIDELITY_TIER=all adds the extended ones (`course fidelity` does)."""
    return fidelity.TIERS if os.environ.get("FIDELITY_TIER") == "all" else ("core",)


@pytest.mark.parametrize("lab", LABS)
def test_lab_grader_fidelity(lab, tmp_path):
    skip_if_data_missing(lab)
    cases = fidelity.load_cases(lab, tiers=tiers_wanted())
    outcomes, scratch = fidelity.run_lab(lab, cases, workdir=tmp_path, visible_run=visible_run_wanted(lab))
    report = fidelity.summary(lab, outcomes)
    print(fidelity.format_report([report]))
    assert not report["disagreements"], "\n".join(report["disagreements"])
    assert not report["visibility_notes"], "\n".join(report["visibility_notes"])
    assert [o.case.kind for o in outcomes[:2]] == ["reference", "blank"]
    assert outcomes[0].max_score > 0

    # nbgrader fails a test cell that writes to stderr (a warning is enough): none may.
    reference = next(o.case for o in outcomes if o.case.kind == "reference")
    graded_nb = notebooks.read(layout.notebook(scratch, "autograded", lab, student=reference.student))
    for grade_id, cell in notebooks.graded_cells(graded_nb).items():
        noisy = [o for o in cell.outputs if o.output_type == "error"
                 or (o.output_type == "stream" and o.name == "stderr")]
        assert not noisy, f"{lab}/{grade_id} wrote to stderr or raised: {noisy}"


# Issue 13's bar for what CI proves: at least 12 mutants and 4 variants per lab, lab 08 8 and 3.
MINIMUM_CASES = {"lab08_cifar10_cnn": (8, 3)}
BELOW_THE_BAR = {"lab09_transfer_learning": "lab 09's fidelity pass (issue 13) has not been done yet"}


@pytest.mark.parametrize("lab", LABS)
def test_lab_has_enough_fidelity_cases(lab):
    """Counted in the core tier: what CI proves on every change."""
    cases = fidelity.load_cases(lab, merge=False, tiers=("core",))
    mutants = [c for c in cases if c.kind == "mutant"]
    variants = [c for c in cases if c.kind == "variant"]
    need_m, need_v = MINIMUM_CASES.get(lab, (12, 4))
    enough = len(mutants) >= need_m and len(variants) >= need_v
    if lab in BELOW_THE_BAR:
        assert not enough, f"{lab} now has enough cases: remove it from BELOW_THE_BAR"
        pytest.xfail(BELOW_THE_BAR[lab])
    assert enough, (f"{lab}: {len(mutants)} mutants and {len(variants)} variants in the core tier of "
                    f"tests/fidelity/{lab}.toml; need at least {need_m} and {need_v}")


@pytest.mark.parametrize("lab", LABS[:1])
def test_release_validates_inverted_every_test_fails(lab):
    """`nbgrader validate --invert` on the blank release: no test passes. Students' Validate path,
    on the first lab; for every lab the fidelity run's blank case proves the same (zero in every
    graded cell), and `course check` runs this for every lab."""
    result = nbgrader_ops.validate(ROOT, layout.notebook(ROOT, "release", lab), invert=True)
    assert result.ok, f"{lab}: tests passed on the blank release: {result.passed}"


def test_course_demo_cli_grades_feedback_and_export(tmp_path):
    """The README's main job through the real command line, in a scratch directory: score
    table, feedback HTML students can use, grades CSV with names; then `course remove-student
    --demo` takes the demo students out again."""
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "demo", "--dir", str(tmp_path), *LABS[:2]],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # two labs: the one with the larger budget is graded in a second process beside the other
    _, beside = demo.plan_lanes(list(LABS[:2]), cores=2)
    assert f"[{beside}] grading beside the other labs" in out and f"[{beside}] graded in" in out, out
    assert re.search(r"^demo-reference\s+(\d+)/\1\s+(\d+)/\2\s", out, re.M), out  # full marks, both labs
    assert re.search(r"^demo-blank\s+0/\d+\s+0/\d+\s", out, re.M), out              # zero, both labs
    for lab in LABS[:2]:
        for student in ("demo-reference", "demo-blank"):
            html = tmp_path / "feedback" / student / lab / f"{lab}.html"
            assert html.is_file() and str(html) in out and "Score" in html.read_text()
    lines = (tmp_path / "grades.csv").read_text().splitlines()
    assert lines[0].startswith("assignment,") and len(lines) == 5
    for student in ("demo-reference", "demo-blank"):
        stamp = (tmp_path / "submitted" / student / LABS[0] / "timestamp.txt").read_text()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC", stamp)

    # Feedback students can use: exercises by name, math without a CDN, hidden tests' code absent.
    source = notebooks.read(layout.notebook(ROOT, "source", LABS[0]))
    hidden = [line for cell in notebooks.graded_cells(source).values()
              for line in failures.hidden_source(cell.source) if len(line) >= 16]
    assert hidden
    for student in ("demo-reference", "demo-blank"):
        html = (tmp_path / "feedback" / student / LABS[0] / f"{LABS[0]}.html").read_text()
        assert ">Test cell<" not in html and "Exercise 1 — " in html and "<math" in html and "cdnjs" not in html
        assert not [line for line in hidden if line in html], "hidden test code in feedback"
    blank = (tmp_path / "feedback" / "demo-blank" / LABS[0] / f"{LABS[0]}.html").read_text()
    assert "Not passed:" in blank and "is not answered yet" in blank
    assert "Demo,Reference" in (tmp_path / "grades.csv").read_text()  # named in the gradebook

    # The demo students leave as they came.
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "remove-student", "--demo", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not list((tmp_path / "submitted").iterdir()) and not (tmp_path / "feedback" / "demo-blank").exists()
    assert (tmp_path / "grades.csv").read_text().strip().count("\n") == 0  # header only


def test_course_check_cli_on_first_lab():
    """`course check`: source validates, release validates inverted, generated folders in sync."""
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "check", "--dir", str(ROOT), LABS[0]],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout
