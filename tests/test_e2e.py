"""nbgrader end to end, in a temporary course directory per lab: the reference solution scores
full marks on every graded cell, the blank release scores zero on every graded cell, no test
cell writes to stderr, and feedback and grades are produced."""
import re
import subprocess
import sys
from datetime import datetime

import pytest

from coursetools import demo, layout, nbgrader_ops, notebooks
from conftest import LABS, ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("lab", LABS)
def test_lab_grades_reference_full_and_blank_zero(lab, tmp_path):
    result = demo.run_demo(tmp_path, [lab], log=lambda *_: None)
    rows = {r.student: r for r in result.rows}
    reference, blank = rows[demo.REFERENCE], rows[demo.BLANK]

    lost = {cell: s for cell, s in reference.cells.items() if s[0] != s[1]}
    assert not lost, f"{lab}: the reference solution lost points in {lost}"
    assert reference.score == reference.max_score > 0

    scored = {cell: s for cell, s in blank.cells.items() if s[0] != 0}
    assert not scored, f"{lab}: the blank notebook scored in {scored}"
    assert set(blank.cells) == set(reference.cells)

    # nbgrader fails a test cell that writes to stderr (a warning is enough): none may.
    graded_nb = notebooks.read(layout.notebook(tmp_path, "autograded", lab, student=demo.REFERENCE))
    for grade_id, cell in notebooks.graded_cells(graded_nb).items():
        noisy = [o for o in cell.outputs if o.output_type == "error"
                 or (o.output_type == "stream" and o.name == "stderr")]
        assert not noisy, f"{lab}/{grade_id} wrote to stderr or raised: {noisy}"

    for student in (demo.REFERENCE, demo.BLANK):
        stamp = (tmp_path / "submitted" / student / lab / "timestamp.txt").read_text()
        datetime.strptime(stamp, notebooks.TIMESTAMP_FORMAT)
        html = tmp_path / "feedback" / student / lab / f"{lab}.html"
        assert html.is_file() and "Score" in html.read_text(), f"no feedback for {student}"
    lines = result.grades_csv.read_text().splitlines()
    assert lines[0].startswith("assignment,") and len(lines) == 3


@pytest.mark.parametrize("lab", LABS)
def test_release_validates_inverted_every_test_fails(lab):
    """`nbgrader validate --invert` on the blank release: no test passes."""
    result = nbgrader_ops.validate(ROOT, layout.notebook(ROOT, "release", lab), invert=True)
    assert result.ok, f"{lab}: tests passed on the blank release: {result.passed}"


def test_course_cli_demo_prints_score_table(tmp_path):
    """The README's main job, through the real command line, in a scratch directory."""
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "demo", "--dir", str(tmp_path), LABS[0]],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "demo-reference" in out and "demo-blank" in out and "grades CSV:" in out
    assert re.search(r"^demo-reference\s+(\d+)/\1\s", out, re.M), out  # full marks
    assert re.search(r"^demo-blank\s+0/\d+\s", out, re.M), out            # zero
    assert (tmp_path / "grades.csv").is_file() and ".html" in out


def test_course_check_cli_on_first_lab():
    """`course check`: source validates, release validates inverted, generated folders in sync."""
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "check", "--dir", str(ROOT), LABS[0]],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout
