"""Feedback pages students can use (``nbgrader generate_feedback``, via ``nbgrader_config.py``).

nbgrader's own page loads MathJax from a CDN (raw TeX offline), lists every graded cell as
"Test cell", buries the failure message at the end of a traceback and shows the hidden tests'
code (nbgrader issue #917). Two pieces change that and keep the rest of nbgrader's page:

- ``StudentFeedback``, a preprocessor run after nbgrader's GetGrades: names each graded cell
  by its exercise, puts the course's failure message first, and (``hide_hidden_tests``, on by
  default) removes hidden-test code from the cell and from its traceback, keeping the message;
- ``FeedbackExporter``, the HTMLExporter for feedback: the ``course_feedback`` template
  (``feedback_templates/``, extending nbgrader's) and math rendered to MathML when the page
  is written, which browsers display with no script, no network and no extra files (the page
  is what ``release_feedback`` hands to students).

Formgrader's manual-grading page gets the same math: ``nbgrader_config.py`` gives its
HTMLExporter the ``course_formgrade`` template (nbgrader's ``formgrade`` without MathJax) and
the :func:`markdown2mathml` filter.
"""
from __future__ import annotations

import re
from pathlib import Path

from jinja2 import pass_context
from nbconvert.exporters import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
from traitlets import Bool, List, Unicode

from coursetools import notebooks
from coursetools.report import failures, messages

TEMPLATES = Path(__file__).resolve().parent / "feedback_templates"
TEMPLATE_NAME = "course_feedback"
TEMPLATE_FILE = "course_feedback.html.j2"


def nbgrader_templates() -> Path:
    """nbgrader's formgrader templates (its ``feedback`` template lives there)."""
    import nbgrader

    return Path(nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader" / "templates"


# ------------------------------------------------------------------ math

def tex_to_mathml(tex: str, display: str) -> str | None:
    """MathML for a TeX formula (``display``: "inline" or "block"); None if it cannot be converted."""
    from latex2mathml.converter import convert

    try:
        return convert(tex.strip(), display=display)
    except Exception:  # noqa: BLE001 - unsupported TeX stays visible as TeX
        return None


class MathMLRenderer(IPythonRenderer):
    """nbconvert's markdown renderer, with ``$…$``, ``$$…$$`` and LaTeX environments as MathML."""

    def inline_math(self, body: str) -> str:
        return tex_to_mathml(body, "inline") or super().inline_math(body)

    def block_math(self, body: str) -> str:
        return tex_to_mathml(body, "block") or super().block_math(body)

    def latex_environment(self, name: str, body: str) -> str:
        return tex_to_mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block") or \
            super().latex_environment(name, body)


def render_markdown(source: str, cell: dict | None = None, path: str = "", **options) -> str:
    """Markdown to HTML as nbconvert renders it, with math as MathML (:class:`MathMLRenderer`)."""
    renderer = MathMLRenderer(escape=False, attachments=(cell or {}).get("attachments", {}), path=path, **options)
    return MarkdownWithMath(renderer=renderer).render(source)


@pass_context
def markdown2mathml(context, source: str) -> str:
    """The ``markdown2html`` filter for Formgrader's manual-grading page (set in
    ``nbgrader_config.py`` with the ``course_formgrade`` template, which drops its MathJax):
    nbgrader builds that page with a plain HTMLExporter and no way to name another class."""
    return render_markdown(source, context.get("cell", {}),
                           context.get("resources", {}).get("metadata", {}).get("path", ""))


class FeedbackExporter(HTMLExporter):
    """HTMLExporter for feedback pages: the course's template, which extends nbgrader's
    ``feedback`` (GenerateFeedback configures ``HTMLExporter`` with nbgrader's; keyword arguments
    take precedence over configuration), and MathML math."""

    def __init__(self, config=None, **kw):
        kw.setdefault("template_name", TEMPLATE_NAME)
        kw.setdefault("template_file", TEMPLATE_FILE)  # its 'index.html.j2' is then nbgrader's
        kw.setdefault("extra_template_basedirs", [str(TEMPLATES), str(nbgrader_templates())])
        kw.setdefault("filters", {})  # not the configured Formgrader filter: markdown2html below
        super().__init__(config=config, **kw)

    @pass_context
    def markdown2html(self, context, source):
        return render_markdown(source, context.get("cell", {}),
                               context.get("resources", {}).get("metadata", {}).get("path", ""),
                               embed_images=self.embed_images, anchor_link_text=self.anchor_link_text,
                               exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)


# ------------------------------------------------------------------ graded cells

_NUMBERED_LINE = re.compile(r"^(\s*(?:-*>\s*)?)(\d+)(\s|$)")
_CELL_HEADER = re.compile(r"(?:Cell In|Input In)\s*\[\s*(\d*)\s*\]")


def failure_message(cell) -> str:
    """The course's message for a failed test cell: the exception and its message (plus any
    note added to it, such as an unanswered exercise), or the first line written to stderr."""
    found = failures.cell_failure(cell)
    if found.kind == "stderr":
        return f"the test wrote to stderr: {found.message}"
    if found.kind != "error":
        return ""
    text = f"{found.ename}: {found.message}" if found.message else found.ename
    error = next(o for o in cell.get("outputs", []) if o.get("output_type") == "error")
    lines = [messages.strip_ansi(str(t)).rstrip() for t in error.get("traceback") or []]
    last = max((i for i, line in enumerate(lines) if line.startswith(f"{found.ename}:") or line == found.ename),
               default=len(lines))
    notes = [line for line in lines[last + 1:] if line.strip()]
    return "\n".join([text, *notes])


def hide_traceback_lines(traceback: list[str], hidden: frozenset[int], source: str,
                         execution_count: int | None) -> list[str]:
    """``traceback`` with every quoted line of this cell that lies in a hidden-test region
    replaced by ``[hidden test code]`` (frames of other cells, e.g. a student's function, stay)."""
    out = []
    for frame in traceback:
        header = _CELL_HEADER.search(messages.strip_ansi(frame))
        if not header or (execution_count is not None and header.group(1) not in ("", str(execution_count))):
            out.append(frame)
            continue
        lines = []
        for line in frame.split("\n"):
            match = _NUMBERED_LINE.match(messages.strip_ansi(line))
            if match and failures.source_line(int(match.group(2)), source) in hidden:
                line = f"{match.group(1)}{match.group(2)} [hidden test code]"
            lines.append(line)
        out.append("\n".join(lines))
    return out


class StudentFeedback(NbGraderPreprocessor):
    """Prepares an autograded notebook for the course's feedback template: each graded cell's
    exercise title and failure message go into ``cell.metadata.course_feedback``; with
    ``hide_hidden_tests``, hidden-test code is removed from test cells and their tracebacks."""

    hide_hidden_tests = Bool(
        True, help="Remove hidden-test code from test cells and tracebacks in feedback (their "
                   "messages stay). False shows students the hidden tests.").tag(config=True)
    hidden_placeholder = Unicode(
        "# (hidden tests: not shown)", help="What replaces a hidden-test region in feedback.").tag(config=True)
    # HTMLExporter configures display_data_priority for all its preprocessors; as nbgrader's
    # GetGrades does, accept it (unused) so traitlets does not warn.
    display_data_priority = List().tag(config=True)

    def preprocess(self, nb, resources):
        configured, traits = self.config.ClearHiddenTests, ClearHiddenTests.class_traits()
        self._delimiters = tuple(configured.get(name, traits[name].default_value)  # the course's, as autograde used
                                 for name in ("begin_test_delimeter", "end_test_delimeter"))
        self._titles = {grade_id: notebooks.exercise_name(*heading)
                        for grade_id, heading in notebooks.exercise_headings(nb.cells).items()}
        return super().preprocess(nb, resources)

    def preprocess_cell(self, cell, resources, index):
        meta = notebooks.nbgrader_meta(cell)
        if not meta.get("grade") or cell.cell_type != "code":
            return cell, resources
        source = cell.source
        score, points = meta.get("score"), meta.get("points")
        failed = score is not None and points is not None and float(score) < float(points)
        message = (failure_message(cell) or "the test did not pass (no error message was recorded)") if failed else ""
        cell.metadata["course_feedback"] = {"title": self._titles.get(meta.get("grade_id"), ""), "failure": message}
        if self.hide_hidden_tests:
            self._hide(cell, source)
        return cell, resources

    def _hide(self, cell, source: str) -> None:
        begin, end = self._delimiters
        hidden = failures.hidden_lines(source, begin, end)
        if not hidden:
            return
        kept = []
        for number, line in enumerate(source.splitlines(), start=1):
            if number not in hidden:
                kept.append(line)
            elif number - 1 not in hidden:  # one placeholder per hidden region
                kept.append(re.match(r"\s*", line).group(0) + self.hidden_placeholder)
        cell.source = "\n".join(kept)
        # safety net: a message or printout that quotes a hidden line
        secret = messages.recognisable(failures.hidden_source(source, begin, end))
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                output["traceback"] = hide_traceback_lines(output.get("traceback") or [], hidden, source,
                                                           cell.get("execution_count"))
                output["evalue"] = messages.redact(str(output.get("evalue", "")), secret)
            elif output.get("output_type") == "stream":
                output["text"] = messages.redact(str(output.get("text", "")), secret)
        feedback = cell.metadata["course_feedback"]
        feedback["failure"] = messages.redact(feedback["failure"], secret)

