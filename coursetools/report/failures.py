"""Why a graded test cell lost its points, and whether the visible checks had already passed.

A test cell holds visible checks first and then, between ``### BEGIN HIDDEN TESTS`` and
``### END HIDDEN TESTS``, checks the student never saw. nbgrader grades the cell as a whole,
so the score alone cannot say which part failed. The error output can: IPython's traceback
names the line of the cell that was running when the exception escaped (``Cell In[12], line
17``; its outermost frame is always the test cell itself, even when the error was raised
deep inside ``helpers.checks`` or in a function the student wrote). The cell runs top to
bottom and stops at the first failure, so a failure on a hidden line means every visible check
passed: the student lost the exercise *only* to the hidden tests.

The line numbers refer to the code that ran: the autograded copy of the cell, which nbgrader
restores from the gradebook (the source notebook's cell, hidden tests included). IPython drops
leading blank lines before it numbers them, which ``source_line`` undoes.

Only the exception's name and message leave this module; tracebacks quote the code around the
failing line, hidden tests included, and are never shown.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from coursetools.report.messages import strip_ansi

VISIBLE, HIDDEN, UNKNOWN = "visible", "hidden", "unknown"
BEGIN, END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"  # nbgrader's ClearHiddenTests delimiters

# IPython >= 8.? ("Cell In[12], line 17"), 8.0-8.x ("Input In [12], in <cell line: 17>()"),
# <= 7 ("<ipython-input-12-...> in <module>" followed by "----> 17 ...").
_CELL_FRAME = re.compile(r"^\s*(?:Cell In\s*\[\s*\d*\s*\],\s*line (\d+)|Input In\s*\[\s*\d*\s*\],\s*in <cell line: (\d+)>)")
_OLD_CELL_FRAME = re.compile(r"^\s*<ipython-input-\d+-[0-9a-f]+>\s+in\s")
_ARROW = re.compile(r"^\s*-*>\s*(\d+)\b")


@dataclass(frozen=True)
class CellFailure:
    """What a graded cell's outputs say about why it lost points.

    ``kind``: ``error`` (an exception), ``stderr`` (the cell wrote to stderr, which nbgrader
    scores 0), ``missing cell`` (the test cell is not in the autograded notebook), ``no
    notebook`` (no autograded notebook to read) or ``no error`` (points lost without an error
    output, e.g. partial credit). ``where``: visible / hidden / unknown."""
    kind: str
    ename: str = ""
    message: str = ""
    line: int | None = None
    where: str = UNKNOWN


def failing_line(traceback: list[str] | str) -> int | None:
    """The line of the executed cell (as IPython numbers it) where the exception escaped, from
    an error output's traceback; None when the traceback names no cell frame."""
    text = strip_ansi(traceback if isinstance(traceback, str) else "\n".join(traceback))
    in_old_frame = False
    for line in text.splitlines():
        match = _CELL_FRAME.match(line)
        if match:
            return int(match.group(1) or match.group(2))
        if _OLD_CELL_FRAME.match(line):
            in_old_frame = True
            continue
        if in_old_frame:
            arrow = _ARROW.match(line)
            if arrow:
                return int(arrow.group(1))
    return None


def source_line(ipython_line: int, source: str) -> int:
    """The 1-based line of ``source`` that IPython called ``ipython_line``: IPython removes
    leading blank (or whitespace-only) lines before running a cell."""
    lines = source.splitlines()
    skipped = 0
    for line in lines:
        if line and not line.isspace():
            break
        skipped += 1
    else:
        skipped = 0
    return ipython_line + skipped


def hidden_lines(source: str, begin: str = BEGIN, end: str = END) -> frozenset[int]:
    """1-based numbers of the lines of a test cell inside hidden-test regions, delimiters
    included, with nbgrader's rule (a line *containing* the delimiter starts or ends a region;
    an unclosed region runs to the end of the cell). Code after an END line is visible again."""
    hidden, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        if begin in line:
            inside = True
            hidden.add(number)
        elif end in line:
            hidden.add(number)
            inside = False
        elif inside:
            hidden.add(number)
    return frozenset(hidden)


def hidden_source(source: str, begin: str = BEGIN, end: str = END) -> list[str]:
    """The stripped, non-blank hidden lines of a cell, delimiters excluded (for redaction)."""
    lines = source.splitlines()
    return [lines[n - 1].strip() for n in sorted(hidden_lines(source, begin, end))
            if lines[n - 1].strip() and begin not in lines[n - 1] and end not in lines[n - 1]]


def where(line: int | None, source: str, begin: str = BEGIN, end: str = END) -> str:
    """visible / hidden for a failing IPython line of a cell with this source."""
    if line is None or not source:
        return UNKNOWN
    actual = source_line(line, source)
    if actual > len(source.splitlines()):
        return UNKNOWN
    return HIDDEN if actual in hidden_lines(source, begin, end) else VISIBLE


def cell_failure(cell: dict | None, fallback_source: str = "", begin: str = BEGIN, end: str = END) -> CellFailure:
    """Why this autograded test cell lost points. ``cell`` is the notebook's cell (plain JSON);
    its own source locates the failing line, ``fallback_source`` (the source notebook's cell)
    is used when the autograded cell has none."""
    if cell is None:
        return CellFailure("missing cell")
    source = _text(cell.get("source", "")) or fallback_source
    stderr = []
    for output in cell.get("outputs", []) or []:
        if output.get("output_type") == "error":
            line = failing_line(output.get("traceback") or [])
            return CellFailure("error", strip_ansi(str(output.get("ename", ""))), strip_ansi(str(output.get("evalue", ""))),
                               None if line is None else source_line(line, source) if source else line,
                               where(line, source, begin, end))
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            stderr.append(_text(output.get("text", "")))
    if stderr:
        first = next((l.strip() for l in strip_ansi("".join(stderr)).splitlines() if l.strip()), "")
        return CellFailure("stderr", "stderr", first)
    return CellFailure("no error")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")
