"""The tables of the class report, computed from one lab's collected data.

- ``summary``: completion, statuses, lateness, scores, grading time;
- ``exercise_table``: per exercise, how many students got full marks, partial or zero, and of
  those who lost points, where the test stopped them (a visible check, only the hidden tests,
  or no error to locate), with the item analysis;
- ``reason_table``: per exercise, failures grouped by their normalised message and the line
  that raised them, most frequent first, with one example student each.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from coursetools.report import items, messages
from coursetools.report.collect import LabData
from coursetools.report.failures import HIDDEN, UNKNOWN, VISIBLE

# How a failure without an exception is shown in the reason table.
KIND_LABEL = {
    "stderr": "wrote to stderr (nbgrader scores such a cell 0)",
    "missing cell": "test cell missing from the graded notebook (deleted by the student)",
    "no notebook": "no autograded notebook to read",
    "no error": "lost points without an error (partial credit or a manual grade)",
}


def summary(data: LabData) -> dict:
    """Completion, statuses, lateness and score statistics of the lab."""
    s = data.students
    submitted = s[s["submitted"]]
    graded = s[s["graded"]]
    late = submitted["seconds_late"].fillna(0) > 0
    scores = graded["score"].dropna()
    status_counts = s["status"].value_counts().to_dict()
    grading = pd.to_numeric(submitted["grading_seconds"], errors="coerce").dropna()
    return {
        "lab": data.lab,
        "roster": int(len(s)),
        "submitted": int(len(submitted)),
        "completion": _ratio(len(submitted), len(s)),
        "graded": int(len(graded)),
        "statuses": {k: int(v) for k, v in sorted(status_counts.items())},
        "failed": int(status_counts.get("failed", 0)),
        "needs_review": int(status_counts.get("needs review", 0)),
        "awaiting": int(status_counts.get("awaiting grading", 0)),
        "not_submitted": int(status_counts.get("not submitted", 0)),
        "late": int(late.sum()),
        "duedate": data.duedate.isoformat(sep=" ") + " UTC" if data.duedate else None,
        "median_hours_late": float(submitted.loc[late, "seconds_late"].median() / 3600) if late.any() else None,
        "max_score": data.max_score,
        "mean_score": _num(scores.mean()),
        "median_score": _num(scores.median()),
        "full_marks": int((scores >= data.max_score).sum()) if data.max_score else 0,
        "grading_seconds_median": _num(grading.median()),
        "grading_seconds_max": _num(grading.max()),
        "has_gradebook": data.has_gradebook,
        "filters": data.filters,
        "unknown_students": data.unknown_students,
    }


def exercise_table(data: LabData) -> pd.DataFrame:
    """One row per graded cell: outcome counts, where points were lost, item analysis."""
    points = {e.grade_id: e.points for e in data.exercises}
    analysis = items.item_analysis(data.scores, points)
    lost_where = data.failures.assign(where=lambda f: np.where(f["kind"] == "error", f["where"], UNKNOWN))
    rows = []
    for e in data.exercises:
        column = data.scores[e.grade_id].dropna() if e.grade_id in data.scores else pd.Series(dtype=float)
        n = len(column)
        full = int((column >= e.points).sum())
        zero = int((column <= 0).sum()) if e.points > 0 else 0
        where = lost_where.loc[lost_where["cell"] == e.grade_id, "where"].value_counts()
        difficulty = analysis.at[e.grade_id, "difficulty"] if e.grade_id in analysis.index else np.nan
        discrimination = analysis.at[e.grade_id, "discrimination"] if e.grade_id in analysis.index else np.nan
        rows.append({
            "cell": e.grade_id, "exercise": e.label, "title": e.title, "points": e.points, "graded": n,
            "full": full, "partial": n - full - zero, "zero": zero,
            "lost_at_visible_check": int(where.get(VISIBLE, 0)),
            "lost_only_to_hidden_tests": int(where.get(HIDDEN, 0)),
            "lost_other": int(where.get(UNKNOWN, 0)),
            "full_share": _ratio(full, n), "partial_share": _ratio(n - full - zero, n), "zero_share": _ratio(zero, n),
            "difficulty": _num(difficulty), "discrimination": _num(discrimination),
            "item_verdict": items.verdict(difficulty, discrimination),
        })
    return pd.DataFrame(rows)


def reason_table(data: LabData, out_dir: Path | None = None, course: Path | None = None) -> pd.DataFrame:
    """Failures grouped per exercise by (kind, exception name, normalised message, failing
    line): different checks stay apart even when their messages read alike. ``students`` is
    the group's size; the example is its first student in alphabetical order, with a link
    relative to ``out_dir`` to their nbgrader feedback when it exists."""
    columns = ["cell", "exercise", "students", "share_of_losses", "where", "line", "kind", "error",
               "reason", "pattern", "distinct_messages", "example_student", "example_message", "feedback"]
    f = data.failures
    if f.empty:
        return pd.DataFrame(columns=columns)
    labels = {e.grade_id: e.label for e in data.exercises}
    order = {e.grade_id: i for i, e in enumerate(data.exercises)}
    lost_per_cell = f.groupby("cell")["student"].nunique()
    normalised = [messages.normalise(messages.redact(m, data.secret_lines)) for m in f["message"]]
    f = f.assign(pattern=[n.pattern for n in normalised], _norm=normalised,
                 line_key=f["line"].fillna(-1).astype(int))
    rows = []
    for (cell, kind, ename, pattern, line), group in f.groupby(["cell", "kind", "ename", "pattern", "line_key"], sort=False):
        group = group.sort_values("student")
        example = group.iloc[0]
        if kind == "error":
            reason = messages.describe(list(group["_norm"]))
            error = ename
        else:
            reason = KIND_LABEL.get(kind, kind) + (f": {messages.describe(list(group['_norm']))}" if pattern != "(no message)" else "")
            error = "" if kind != "stderr" else "stderr"
        rows.append({
            "cell": cell, "exercise": labels.get(cell, cell), "students": int(group["student"].nunique()),
            "share_of_losses": _ratio(group["student"].nunique(), lost_per_cell.get(cell, 0)),
            "where": example["where"] if kind == "error" else UNKNOWN,
            "line": None if line < 0 else int(line), "kind": kind, "error": error,
            "reason": messages.redact(reason, data.secret_lines), "pattern": pattern,
            "distinct_messages": int(group["message"].nunique()),
            "example_student": str(example["student"]),
            "example_message": messages.redact(str(example["message"]), data.secret_lines),
            "feedback": feedback_link(course, data.lab, str(example["student"]), out_dir) if course else None,
        })
    table = pd.DataFrame(rows, columns=columns)
    table["line"] = table["line"].astype("Int64")  # whole numbers in the CSV, empty when unknown
    table["_order"] = table["cell"].map(order).fillna(len(order))
    table = table.sort_values(["_order", "students", "reason"], ascending=[True, False, True], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)


def feedback_link(course: Path, lab: str, student: str, out_dir: Path | None) -> str | None:
    """Relative path from the report to the student's nbgrader feedback, if it exists."""
    path = course / "feedback" / student / lab / f"{lab}.html"
    if not path.is_file():
        return None
    return Path(os.path.relpath(path, out_dir or course)).as_posix()


def _ratio(a: float, b: float) -> float | None:
    return round(float(a) / float(b), 4) if b else None


def _num(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(value) else round(value, 4)
