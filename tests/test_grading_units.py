"""Submission inspection and repair for `course grade`, without running nbgrader."""
import json

import nbformat
import pytest

from coursetools import grading, layout, notebooks
from coursetools.grading import ledger
from coursetools.grading import Limits, Result, SubmissionProblem
from conftest import ROOT

LAB = layout.labs(ROOT)[0]


@pytest.fixture
def course(tmp_path):
    """A course directory with the first lab's release and one submitted reference."""
    (tmp_path / "release" / LAB).mkdir(parents=True)
    release = notebooks.read(layout.notebook(ROOT, "release", LAB))
    notebooks.write(release, layout.notebook(tmp_path, "release", LAB))
    source = notebooks.read(layout.notebook(ROOT, "source", LAB))
    notebooks.write_submission(tmp_path, "alice", LAB, notebooks.fill_solutions(release, source))
    return tmp_path


def prepared(course, scratch):
    return grading.prepare_submission(course, scratch, LAB, "alice")


def submitted(course):
    return course / "submitted" / "alice" / LAB


def test_clean_submission_has_no_notes(course, tmp_path_factory):
    notes, stamp = prepared(course, tmp_path_factory.mktemp("s"))
    assert notes == [] and stamp.endswith(" UTC")


def test_invalid_json_and_missing_notebook(course, tmp_path_factory):
    (submitted(course) / f"{LAB}.ipynb").write_text("{not json")
    with pytest.raises(SubmissionProblem, match="invalid notebook"):
        prepared(course, tmp_path_factory.mktemp("s"))
    (submitted(course) / f"{LAB}.ipynb").unlink()
    with pytest.raises(SubmissionProblem, match="no notebook submitted"):
        prepared(course, tmp_path_factory.mktemp("s"))
    (submitted(course) / "a.ipynb").write_text("{}")
    (submitted(course) / "b.ipynb").write_text("{}")
    with pytest.raises(SubmissionProblem, match="found a.ipynb, b.ipynb"):
        prepared(course, tmp_path_factory.mktemp("s"))


def test_renamed_notebook_is_graded_under_its_name_and_original_untouched(course, tmp_path_factory):
    original = submitted(course) / f"{LAB}.ipynb"
    original.rename(submitted(course) / "my work.ipynb")
    scratch = tmp_path_factory.mktemp("s")
    notes, _ = prepared(course, scratch)
    assert notes == [f"notebook was renamed to my work.ipynb; graded it as {LAB}.ipynb"]
    assert (scratch / "submitted" / "alice" / LAB / f"{LAB}.ipynb").is_file()
    assert (submitted(course) / "my work.ipynb").is_file() and not original.exists()


@pytest.mark.parametrize("text, note", [
    (None, "no timestamp.txt"),
    ("yesterday-ish", "malformed timestamp.txt 'yesterday-ish'"),
])
def test_missing_or_malformed_timestamp_is_noted_and_dropped(course, tmp_path_factory, text, note):
    stamp = submitted(course) / "timestamp.txt"
    stamp.unlink() if text is None else stamp.write_text(text)
    scratch = tmp_path_factory.mktemp("s")
    notes, used = prepared(course, scratch)
    assert used is None and any(n.startswith(note) for n in notes)
    assert not (scratch / "submitted" / "alice" / LAB / "timestamp.txt").exists()
    assert text is None or stamp.read_text() == text  # the original is kept as it was


def test_other_timestamp_formats_nbgrader_accepts_are_kept(course, tmp_path_factory):
    (submitted(course) / "timestamp.txt").write_text("2026-11-21 14:05:00")
    notes, used = prepared(course, tmp_path_factory.mktemp("s"))
    assert used == "2026-11-21 14:05:00" and notes == []


def _edit(course, change):
    path = submitted(course) / f"{LAB}.ipynb"
    nb = notebooks.read(path)
    change(nb)
    notebooks.write(nb, path)


def _index(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if notebooks.nbgrader_meta(c).get("grade_id") == grade_id)


def test_cell_tampering_is_noted_and_duplicates_removed(course, tmp_path_factory):
    graded = list(notebooks.graded_cells(notebooks.read(layout.notebook(ROOT, "release", LAB))))
    first, second, third = graded[:3]

    def tamper(nb):
        nb.cells.pop(_index(nb, first))                             # deleted test cell
        i = _index(nb, second)
        dup = nbformat.from_dict(nb.cells[i]); dup.id = "copy"
        nb.cells.insert(i, dup)                                     # duplicated test cell
        j = _index(nb, third)
        nb.cells[j].source = "pass"                                 # edited test cell
        k = _index(nb, "intro")
        md = nb.cells[k]
        nb.cells[k] = nbformat.v4.new_code_cell(md.source, metadata=md.metadata, id=md.id)  # re-typed

    _edit(course, tamper)
    scratch = tmp_path_factory.mktemp("s")
    notes, _ = prepared(course, scratch)
    assert f"duplicated cells removed: {second}" in notes
    assert f"graded cells deleted (scored 0): {first}" in notes
    assert "cell type changed (restored): intro" in notes
    assert f"read-only cells edited (restored): {third}" in notes
    repaired = notebooks.read(scratch / "submitted" / "alice" / LAB / f"{LAB}.ipynb")
    ids = [notebooks.nbgrader_meta(c).get("grade_id") for c in repaired.cells]
    assert ids.count(second) == 1


def test_digest_changes_with_any_file(course):
    before = grading.submission_digest(submitted(course))
    (submitted(course) / "timestamp.txt").write_text("2026-11-22 10:00:00.000000 UTC")
    assert grading.submission_digest(submitted(course)) != before


def test_scan_outputs_notes_timeouts_and_memory(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("error", ename="CellTimeoutError", evalue="", traceback=[])]),
                nbformat.v4.new_code_cell("y", outputs=[nbformat.v4.new_output("error", ename="RuntimeError", evalue="DefaultCPUAllocator: can't allocate memory", traceback=[])])]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    assert grading.scan_outputs(path) == ["a cell hit the per-cell time limit", "an allocation hit the memory limit"]


def test_ledger_roundtrip_and_table(tmp_path):
    result = Result("bob", LAB, grading.GRADED, notes=["no timestamp.txt (lateness unknown)"], score=5, max_score=6,
                    cells={"a": [1, 1]}, digest="abc")
    ledger.write(tmp_path, result)
    again = grading.read_ledger(tmp_path, LAB, "bob")
    assert again == result
    assert grading.read_ledger(tmp_path, LAB, "nobody") is None
    failed = Result("carl", LAB, grading.FAILED, reason="invalid notebook (x)")
    table = grading.format_results([again, failed])
    assert "5/6" in table and "graded (no timestamp.txt" in table and "failed: invalid notebook (x)" in table
    flagged = Result("dan", LAB, grading.REVIEW, score=6, max_score=6, review=["imports sys (x, line 1)"])
    assert "needs review: imports sys" in grading.format_results([flagged])
    # a grader crash is never taken as a verdict on the submission
    assert Result("eve", LAB, grading.FAILED, reason="grader crashed: x").crashed and not failed.crashed


def test_default_workers_respects_cores_and_memory():
    assert grading.default_workers(Limits(memory_gb=6)) >= 1
    assert grading.default_workers(Limits(memory_gb=10_000)) == 1


def test_scorer_credits_only_what_the_trusted_side_observed():
    from coursetools.grading.scorer import passed

    cell = nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("stream", name="stderr", text="Warning")])
    assert passed(cell, {"status": "ok", "ack": True})               # a warning is not a failure
    assert not passed(cell, {"status": "ok", "ack": False})          # the cell never reached its end
    assert not passed(cell, {"status": "error", "ack": True})
    assert not passed(cell, None)                                    # never ran
    cell.outputs.append(nbformat.v4.new_output("error", ename="AssertionError", evalue="x", traceback=[]))
    assert not passed(cell, {"status": "ok", "ack": True})
    printed = nbformat.v4.new_code_cell("x", outputs=[nbformat.v4.new_output("execute_result", data={"text/plain": "6"})])
    assert not passed(printed, None)                                 # printing a score earns nothing
