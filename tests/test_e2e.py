"""nbgrader end to end, one scratch course directory per lab. Every lab's cases are autograded
in one batch: the reference solution scores full marks on every graded cell, the blank release
scores zero on every graded cell, every mutant in tests/fidelity/<lab>.toml loses the points it
should (and only those), every variant keeps full marks, and no test cell of the reference
writes to stderr."""
import re
import subprocess
import sys

import pytest

from coursetools import fidelity, layout, nbgrader_ops, notebooks
from conftest import LABS, ROOT, skip_if_data_missing

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("lab", LABS)
def test_lab_grader_fidelity(lab, tmp_path):
    skip_if_data_missing(lab)
    outcomes, scratch = fidelity.run_lab(lab, workdir=tmp_path)
    report = fidelity.summary(lab, outcomes)
    print(fidelity.format_report([report]))
    assert not report["disagreements"], "\n".join(report["disagreements"])
    assert [o.case.kind for o in outcomes[:2]] == ["reference", "blank"]
    assert outcomes[0].max_score > 0

    # nbgrader fails a test cell that writes to stderr (a warning is enough): none may.
    reference = next(o.case for o in outcomes if o.case.kind == "reference")
    graded_nb = notebooks.read(layout.notebook(scratch, "autograded", lab, student=reference.student))
    for grade_id, cell in notebooks.graded_cells(graded_nb).items():
        noisy = [o for o in cell.outputs if o.output_type == "error"
                 or (o.output_type == "stream" and o.name == "stderr")]
        assert not noisy, f"{lab}/{grade_id} wrote to stderr or raised: {noisy}"


@pytest.mark.parametrize("lab", LABS)
def test_lab_has_enough_fidelity_cases(lab):
    cases = fidelity.load_cases(lab, merge=False)
    mutants = [c for c in cases if c.kind == "mutant"]
    variants = [c for c in cases if c.kind == "variant"]
    assert len(mutants) >= 5 and len(variants) >= 2, (
        f"{lab}: {len(mutants)} mutants and {len(variants)} variants in tests/fidelity/{lab}.toml; "
        "need at least 5 and 2")


@pytest.mark.parametrize("lab", LABS)
def test_release_validates_inverted_every_test_fails(lab):
    """`nbgrader validate --invert` on the blank release: no test passes."""
    result = nbgrader_ops.validate(ROOT, layout.notebook(ROOT, "release", lab), invert=True)
    assert result.ok, f"{lab}: tests passed on the blank release: {result.passed}"


def test_course_demo_cli_grades_feedback_and_export(tmp_path):
    """The README's main job through the real command line, in a scratch directory: score
    table, feedback HTML and grades CSV."""
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "demo", "--dir", str(tmp_path), LABS[0]],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"^demo-reference\s+(\d+)/\1\s", out, re.M), out  # full marks
    assert re.search(r"^demo-blank\s+0/\d+\s", out, re.M), out            # zero
    for student in ("demo-reference", "demo-blank"):
        html = tmp_path / "feedback" / student / LABS[0] / f"{LABS[0]}.html"
        assert html.is_file() and str(html) in out and "Score" in html.read_text()
    lines = (tmp_path / "grades.csv").read_text().splitlines()
    assert lines[0].startswith("assignment,") and len(lines) == 3
    for student in ("demo-reference", "demo-blank"):
        stamp = (tmp_path / "submitted" / student / LABS[0] / "timestamp.txt").read_text()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC", stamp)


def test_course_check_cli_on_first_lab():
    """`course check`: source validates, release validates inverted, generated folders in sync."""
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "check", "--dir", str(ROOT), LABS[0]],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout
