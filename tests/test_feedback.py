"""Feedback pages students can use (coursetools/feedback.py, nbgrader_config.py) and the answer
stubs that name their exercise (coursetools/stubs.py). No kernel: synthetic autograded cells."""
import nbformat
import pytest

from coursetools import feedback, nbgrader_ops, notebooks, stubs
from conftest import ROOT

HIDDEN = 'assert recompute_accuracy(model_xyz, X_secret) > 0.99, "the recomputed accuracy is too low"'
TEST_SOURCE = "\n".join([
    "from helpers.checks import check_shape",
    "check_shape(X, (4, 2), 'X')",
    "### BEGIN HIDDEN TESTS",
    HIDDEN,
    "### END HIDDEN TESTS",
])


def ansi_frame(count: int, lines: dict[int, str], failing: int) -> str:
    """A traceback frame as IPython 9 colours it: header, then numbered source lines."""
    out = [f"\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[{count}]\x1b[39m\x1b[32m, line {failing}\x1b[39m"]
    for number, text in lines.items():
        arrow = "----> " if number == failing else "      "
        out.append(f"\x1b[32m{arrow}\x1b[39m\x1b[32m{number}\x1b[39m {text}")
    return "\n".join(out)


def graded_notebook(hidden_failure: bool = True) -> nbformat.NotebookNode:
    """An autograded lab in miniature, scored as nbgrader's GetGrades leaves it: exercise 1's test
    cell failed on its hidden line (or passed), with a traceback quoting it and another cell."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3 (ipykernel)"}})
    heading = nbformat.v4.new_markdown_cell("## Exercise 1 — Make the data (1 point)\n\nThe sigmoid "
                                            "$\\sigma(z) = 1 / (1 + e^{-z})$.\n\n<details><summary>Hint</summary>"
                                            "think</details>")
    answer = nbformat.v4.new_code_cell("X = make_data()", metadata={"nbgrader": {
        "grade": False, "solution": True, "grade_id": "ex1_data", "locked": False, "schema_version": 3}})
    test = nbformat.v4.new_code_cell(TEST_SOURCE, execution_count=5, metadata={"nbgrader": {
        "grade": True, "solution": False, "grade_id": "ex1_data_tests", "locked": True, "points": 1,
        "schema_version": 3, "score": 0.0 if hidden_failure else 1.0}})
    if hidden_failure:
        test.outputs = [nbformat.v4.new_output("error", ename="AssertionError",
                                               evalue="the recomputed accuracy is too low", traceback=[
            "\x1b[31m---------------------------------------------------------------------------\x1b[39m",
            ansi_frame(5, {2: "check_shape(X, (4, 2), 'X')", 3: "### BEGIN HIDDEN TESTS", 4: HIDDEN}, 4),
            ansi_frame(3, {4: "    return X_secret_student_helper"}, 4),  # a student's own cell
            "\x1b[31mAssertionError\x1b[39m: the recomputed accuracy is too low",
        ])]
    nb.cells = [heading, answer, test]
    return nb


def test_student_feedback_names_exercise_puts_message_first_and_hides_hidden_tests():
    nb = graded_notebook()
    nb, _ = feedback.StudentFeedback().preprocess(nb, {})
    test = nb.cells[2]
    assert test.metadata.course_feedback == {"title": "Exercise 1 — Make the data",
                                             "failure": "AssertionError: the recomputed accuracy is too low"}
    assert "recompute_accuracy" not in test.source and "BEGIN HIDDEN" not in test.source
    assert "check_shape(X, (4, 2), 'X')" in test.source and "# (hidden tests: not shown)" in test.source
    [error] = test.outputs
    shown = "\n".join(error.traceback)
    assert "recompute_accuracy" not in shown and "BEGIN HIDDEN" not in shown
    assert "4 [hidden test code]" in shown and "check_shape(X, (4, 2), 'X')" in shown
    assert "X_secret_student_helper" in shown  # another cell's line 4 is not this cell's hidden line
    assert error.evalue == "the recomputed accuracy is too low"


def test_hidden_tests_shown_when_configured():
    from traitlets.config import Config

    config = Config()
    config.StudentFeedback.hide_hidden_tests = False
    nb, _ = feedback.StudentFeedback(config=config).preprocess(graded_notebook(), {})
    assert HIDDEN in nb.cells[2].source and HIDDEN in "\n".join(nb.cells[2].outputs[0].traceback)


def test_passed_cell_has_no_failure_message():
    nb, _ = feedback.StudentFeedback().preprocess(graded_notebook(hidden_failure=False), {})
    assert nb.cells[2].metadata.course_feedback["failure"] == ""


def test_feedback_page_offline_math_titles_and_failure_first():
    """The page nbgrader's generate_feedback writes with this course's configuration: math as
    MathML and no MathJax from a CDN, the contents name exercises instead of "Test cell", the
    failure message comes before the test code, hints have a disclosure triangle."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    config = nbgrader_ops.load_config(ROOT)
    converter = GenerateFeedback(coursedir=CourseDirectory(config=config), config=config)
    assert converter.exporter_class is feedback.FeedbackExporter
    exporter = converter.exporter_class(parent=converter, config=converter.config)
    nb, resources = feedback.StudentFeedback().preprocess(graded_notebook(), {})
    resources.update(nbgrader={"notebook": "lab", "score": 0.0, "max_score": 1.0, "late_penalty": 0})
    html, _ = exporter.from_notebook_node(nb, resources)
    assert "<math" in html and "$\\sigma" not in html
    assert "<script" not in html.lower() or "mathjax" not in html.split("<script", 1)[1].lower()
    assert "cdnjs" not in html and "MathJax.Hub" not in html
    assert ">Test cell<" not in html and "Exercise 1 — Make the data</a>" in html
    assert html.index("Not passed:") < html.index("check_shape")
    assert "recompute_accuracy" not in html
    assert "summary { display: list-item" in html


def test_formgrader_manual_grading_page_has_offline_math(tmp_path):
    """Formgrader renders a submission for manual grading with nbgrader's plain HTMLExporter,
    configured by the extension and then by the course's nbgrader_config.py, as done here."""
    from nbconvert.exporters import HTMLExporter
    from nbgrader.server_extensions.formgrader.formgrader import FormgradeExtension

    extension = FormgradeExtension()
    extension.initialize([], root=str(ROOT))
    exporter = HTMLExporter(config=extension.config)
    assert exporter.template_name == "course_formgrade"
    path = tmp_path / "lab.ipynb"
    nbformat.write(graded_notebook(), path)
    html, _ = exporter.from_filename(str(path), resources={
        "assignment_id": "lab", "notebook_id": "lab", "submission_id": "1", "index": 0, "total": 1,
        "base_url": "/", "student": "ada", "last_name": "Lovelace", "first_name": "Ada",
        "notebook_path": "autograded/ada/lab/lab.ipynb"})
    assert "<math" in html and "$\\sigma" not in html
    assert "cdnjs" not in html and "MathJax.Hub" not in html
    assert "Submission 1 / 1" in html and "formgrade.css" in html  # still nbgrader's formgrade page
    # the feedback exporter keeps its own template and filter under this configuration
    feedback_exporter = feedback.FeedbackExporter(config=extension.config)
    assert feedback_exporter.template_name == feedback.TEMPLATE_NAME and not feedback_exporter.filters


def test_exercise_stub_names_exercise_and_is_valid_python():
    stub = stubs.exercise_stub("# YOUR CODE HERE\nraise NotImplementedError()", 'Exercise 5 — An `evaluate` "fn"')
    assert stub == '# YOUR CODE HERE\nraise NotImplementedError("Exercise 5 — An `evaluate` \\"fn\\": not answered yet")'
    with pytest.raises(NotImplementedError, match='Exercise 5 — An `evaluate` "fn": not answered yet'):
        exec(compile(stub, "stub", "exec"), {})


def test_exercise_headings_cover_solution_and_graded_cells():
    nb = graded_notebook()
    assert notebooks.exercise_headings(nb.cells) == {"ex1_data": ("Exercise 1", "Make the data"),
                                                     "ex1_data_tests": ("Exercise 1", "Make the data")}


def test_course_config_is_serializable():
    """Formgrader logs "Formgrader config is not serializable" when nbgrader_config.py holds
    classes: preprocessors and exporters are named by dotted path."""
    import json

    assert json.dumps(nbgrader_ops.load_config(ROOT))
