"""Static checks on every lab notebook: nbgrader metadata, markers, hints, no stored outputs."""
import re

import pytest

from coursetools import layout, notebooks
from conftest import LABS, ROOT

SOURCE = [layout.notebook(ROOT, "source", lab) for lab in LABS]
RELEASE = [layout.notebook(ROOT, "release", lab) for lab in LABS]
ALL = SOURCE + RELEASE


def ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_every_lab_has_release_and_solution_notebooks():
    assert LABS, "no labs found in source/"
    for lab in LABS:
        for step in ("release", "solutions"):
            assert layout.notebook(ROOT, step, lab).is_file(), f"{step}/{lab} missing: run `course build`"


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_kernelspec_and_no_outputs(path):
    nb = notebooks.read(path)
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.kernelspec.language == "python"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"stored outputs in a cell starting {cell.source[:60]!r}"
            assert cell.execution_count is None


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_grade_ids_unique_and_graded_cells_have_points(path):
    nb = notebooks.read(path)
    seen = set()
    for cell in nb.cells:
        meta = notebooks.nbgrader_meta(cell)
        if not meta:
            continue
        grade_id = meta.get("grade_id")
        assert grade_id, f"nbgrader cell without grade_id: {cell.source[:60]!r}"
        assert grade_id not in seen, f"duplicate grade_id {grade_id}"
        seen.add(grade_id)
        if meta.get("grade"):
            assert cell.cell_type == "code", f"{grade_id}: graded cells are code test cells"
            assert meta.get("points", 0) > 0, f"{grade_id} has no points"
            assert meta.get("locked"), f"{grade_id}: test cells must be read-only"


@pytest.mark.parametrize("path", SOURCE, ids=ids(SOURCE))
def test_source_markers_and_exercise_shape(path):
    """Each exercise: instructions with a collapsed hint, a solution cell with markers, then a
    graded cell with visible checks before its hidden tests."""
    nb = notebooks.read(path)
    cells = nb.cells
    solutions = [i for i, c in enumerate(cells) if notebooks.nbgrader_meta(c).get("solution")]
    graded = [i for i, c in enumerate(cells) if notebooks.nbgrader_meta(c).get("grade")]
    assert solutions, "a lab needs at least one exercise"
    assert len(solutions) == len(graded), "one graded test cell per solution cell"
    for i in solutions:
        cell = cells[i]
        gid = notebooks.nbgrader_meta(cell)["grade_id"]
        assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, gid
        instructions = cells[i - 1]
        assert instructions.cell_type == "markdown", f"{gid}: no instructions right before it"
        assert re.search(r"<details>\s*<summary>", instructions.source), f"{gid}: no collapsed hint"
        test = cells[i + 1]
        assert notebooks.nbgrader_meta(test).get("grade"), f"{gid}: no graded cell right after it"
        visible, _, hidden = test.source.partition("### BEGIN HIDDEN TESTS")
        tid = notebooks.nbgrader_meta(test)["grade_id"]
        assert hidden and "### END HIDDEN TESTS" in hidden, f"{tid}: no hidden tests"
        code_lines = [l for l in visible.splitlines() if l.strip() and not l.lstrip().startswith(("#", "from ", "import "))]
        assert code_lines, f"{tid}: no visible checks before the hidden tests"


@pytest.mark.parametrize("path", RELEASE, ids=ids(RELEASE))
def test_release_has_stubs_and_no_solutions_or_hidden_tests(path):
    nb = notebooks.read(path)
    text = "\n".join(c.source for c in nb.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    headings = notebooks.exercise_headings(nb.cells)
    for grade_id, cell in notebooks.solution_cells(nb).items():
        # the stub names its exercise (coursetools.stubs): "Exercise 2 — The model: not answered yet"
        name = notebooks.exercise_name(*headings[grade_id])
        assert f'# YOUR CODE HERE\nraise NotImplementedError("{name}: not answered yet")' in cell.source, grade_id


@pytest.mark.parametrize("lab", LABS)
def test_solutions_have_code_but_no_hidden_tests(lab):
    nb = notebooks.read(layout.notebook(ROOT, "solutions", lab))
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "BEGIN HIDDEN TESTS" not in code and "raise NotImplementedError(" not in code
