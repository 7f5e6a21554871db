"""Everything the class report needs about one lab, read once, into pandas tables.

Sources, each for what it is authoritative on:

- the **gradebook** (nbgrader's Gradebook API): who is enrolled, who has a graded submission,
  its timestamp and lateness (nbgrader's ``total_seconds_late``, which honours extensions),
  and every graded cell's score;
- the **ledger** ``grading/<lab>/<student>.json`` written by ``course grade``: submissions
  that could not be graded (``failed``), ones flagged ``needs review``, why, and how long
  grading took;
- the **autograded notebooks** ``autograded/<student>/<lab>/<lab>.ipynb``: the error each
  failed test cell raised (read only for students who lost points somewhere);
- the **release** and **source** notebooks: exercise titles and points, and the test cells'
  source for locating hidden tests when an autograded cell lacks it.

Nothing is written: a course without a gradebook file is read from its ledger alone (the
Gradebook API would create an empty database otherwise).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from coursetools import layout, nbgrader_ops, notebooks
from coursetools.report import failures, messages
from coursetools.report.failures import CellFailure

LEDGER_DIR = "grading"


@dataclass
class Exercise:
    """A graded test cell, named after the exercise it checks."""
    grade_id: str
    label: str          # "Exercise 3" (or the grade id when the notebook has no heading)
    title: str          # "Loss function and optimizer"
    points: float
    source: str = field(default="", repr=False)  # the source notebook's cell (hidden tests included)

    @property
    def name(self) -> str:
        return notebooks.exercise_name(self.label, self.title)


@dataclass
class LabData:
    """One lab, filtered. ``students``: one row per student on the roster (index: student id);
    ``scores``: points per graded cell for each graded submission; ``failures``: one row per
    (student, graded cell) that lost points, with what the autograded notebook says."""
    lab: str
    exercises: list[Exercise]
    students: pd.DataFrame
    scores: pd.DataFrame
    failures: pd.DataFrame
    duedate: datetime | None = None
    has_gradebook: bool = True
    secret_lines: list[str] = field(default_factory=list, repr=False)
    filters: dict = field(default_factory=dict)
    unknown_students: list[str] = field(default_factory=list)

    @property
    def max_score(self) -> float:
        return float(sum(e.points for e in self.exercises))


# ------------------------------------------------------------------ notebooks of the lab

def read_json(path: Path) -> dict | None:
    """A notebook as plain JSON (several times faster than nbformat with validation)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("cells"), list) else None


def _meta(cell: dict) -> dict:
    return (cell.get("metadata") or {}).get("nbgrader") or {}


def _source(cell: dict) -> str:
    value = cell.get("source", "")
    return "".join(value) if isinstance(value, list) else str(value)


def exercises(course: Path, lab: str) -> list[Exercise]:
    """Graded cells of the lab in notebook order, titled by the nearest preceding markdown
    cell with an "## Exercise N — title" heading in the release notebook."""
    release = read_json(layout.notebook(course, "release", lab)) or read_json(layout.notebook(course, "source", lab))
    source = read_json(layout.notebook(course, "source", lab)) or {"cells": []}
    if release is None:
        raise FileNotFoundError(f"no release or source notebook for {lab} in {course}")
    sources = {_meta(c).get("grade_id"): _source(c) for c in source["cells"] if _meta(c).get("grade")}
    headings = notebooks.exercise_headings(release["cells"])
    found = []
    for cell in release["cells"]:
        meta = _meta(cell)
        if meta.get("grade") and meta.get("grade_id"):
            gid = meta["grade_id"]
            label, title = headings.get(gid, ("", ""))
            name = label or gid
            if any(e.label == name for e in found):  # a second graded cell under one heading
                name = f"{name} ({gid})"
            found.append(Exercise(gid, name, title, float(meta.get("points", 0) or 0), sources.get(gid, "")))
    return found


def delimiters(course: Path) -> tuple[str, str]:
    """The hidden-test delimiters nbgrader uses in this course (its ClearHiddenTests traits)."""
    try:
        from nbgrader.preprocessors import ClearHiddenTests

        clear = ClearHiddenTests(config=nbgrader_ops.load_config(course))
        return clear.begin_test_delimeter, clear.end_test_delimeter
    except Exception:  # noqa: BLE001 - nbgrader's defaults when the config cannot be read
        return failures.BEGIN, failures.END


def secret_lines(exercises_: list[Exercise], begin: str, end: str) -> list[str]:
    """Hidden-test source lines long enough to be recognisable, longest first."""
    return messages.recognisable(line for e in exercises_ for line in failures.hidden_source(e.source, begin, end))


# ------------------------------------------------------------------ gradebook and ledger

def read_gradebook(course: Path, lab: str) -> dict | None:
    """Roster, submissions (timestamp, seconds late) and cell scores of ``lab`` from the
    gradebook; None when the course has no gradebook yet."""
    if not nbgrader_ops.gradebook_exists(course):
        return None
    url = nbgrader_ops.db_url(course)
    from nbgrader.api import (Gradebook, Grade, GradeCell, MissingEntry, SubmittedAssignment,
                              SubmittedNotebook)

    with warnings.catch_warnings(), Gradebook(url, nbgrader_ops.course_id(course)) as gb:
        warnings.simplefilter("ignore")
        roster = [s.id for s in gb.students]
        try:
            assignment = gb.find_assignment(lab)
        except MissingEntry:
            return {"roster": roster, "duedate": None, "submissions": {}, "grades": []}
        submissions = {s.student_id: (s.timestamp, float(s.total_seconds_late or 0))
                       for s in gb.assignment_submissions(lab)}
        # One query for every cell score of the lab instead of lazy loads per submission.
        grades = (gb.db.query(SubmittedAssignment.student_id, GradeCell.name, Grade.score)
                  .select_from(Grade)
                  .join(GradeCell, Grade.cell_id == GradeCell.id)
                  .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
                  .join(SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
                  .filter(SubmittedAssignment.assignment_id == assignment.id)
                  .all())
        return {"roster": roster, "duedate": assignment.duedate, "submissions": submissions,
                "grades": [(s, g, float(v or 0)) for s, g, v in grades]}


def read_ledger(course: Path, lab: str) -> dict[str, dict]:
    """``course grade``'s record of every submission of ``lab`` (student -> entry)."""
    entries = {}
    for path in sorted((course / LEDGER_DIR / lab).glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict):
            entries[str(entry.get("student") or path.stem)] = entry
    return entries


def parse_timestamp(value) -> pd.Timestamp | None:
    """A submission time as a UTC timestamp: nbgrader's naive-UTC datetimes, timestamp.txt's
    ``%Y-%m-%d %H:%M:%S.%f UTC`` or anything dateutil reads; None when unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return pd.Timestamp(value if value.tzinfo else value.replace(tzinfo=timezone.utc)).tz_convert("UTC")
    text = str(value).strip()
    try:
        stamp = pd.Timestamp(text.removesuffix(" UTC"))
    except (ValueError, OverflowError):
        try:
            from dateutil.parser import parse

            stamp = pd.Timestamp(parse(text))
        except (ValueError, OverflowError):
            return None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# ------------------------------------------------------------------ the lab, assembled

def collect(course: Path, lab: str, students: list[str] | None = None, since: date | None = None) -> LabData:
    """Read and filter everything about ``lab``. ``students``: only these ids; ``since``: only
    submissions made on or after this (UTC) date."""
    exercises_ = exercises(course, lab)
    begin, end = delimiters(course)
    book = read_gradebook(course, lab)
    ledger = read_ledger(course, lab)
    submitted_dir = course / "submitted"
    waiting = {p.parent.name for p in submitted_dir.glob(f"*/{lab}") if p.is_dir()} if submitted_dir.is_dir() else set()

    roster = set(book["roster"]) if book else set()
    roster |= set(ledger) | set(book["submissions"] if book else ()) | waiting
    unknown = sorted(set(students) - roster) if students else []
    if students:
        roster &= set(students)

    rows = {}
    for student in sorted(roster):
        entry = ledger.get(student, {})
        in_book = bool(book) and student in book["submissions"]
        stamp, late = (book["submissions"][student] if in_book else (None, None))
        stamp = parse_timestamp(stamp) or parse_timestamp(entry.get("timestamp"))
        if entry:
            status = str(entry.get("status") or "graded")
        elif in_book:
            status = "graded"
        elif student in waiting:
            status = "awaiting grading"
        else:
            status = "not submitted"
        if not book and status in ("graded", "needs review"):
            # no gradebook at all: the ledger's copy of the scores is all there is
            in_book = bool(entry.get("cells"))
        elif status in ("graded", "needs review") and not in_book:
            status += " (not in gradebook)"  # the ledger and the gradebook disagree: worth a look
        rows[student] = {
            "status": status,
            "submitted": status != "not submitted",
            "graded": in_book,
            "timestamp": stamp,
            "seconds_late": late,
            "grading_seconds": entry.get("seconds"),
            "reason": str(entry.get("reason") or ""),
            "notes": "; ".join(map(str, entry.get("notes") or [])),
            "review": "; ".join(_finding(f) for f in (entry.get("review") or [])),
            "decision": str(entry.get("decision") or ""),  # course review's: accepted | zeroed
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    if table.empty:
        table = pd.DataFrame(columns=["status", "submitted", "graded", "timestamp", "seconds_late",
                                      "grading_seconds", "reason", "notes", "review", "decision"])
    table.index.name = "student"
    if since is not None:
        cutoff = pd.Timestamp(since).tz_localize("UTC")
        early = table["submitted"] & ~table["timestamp"].map(lambda t: t is not None and t >= cutoff)
        table.loc[early, ["status", "submitted", "graded"]] = ["before --since", False, False]

    ids = [e.grade_id for e in exercises_]
    graded = [s for s in table.index if table.at[s, "graded"]]
    if book:
        scores = pd.DataFrame([(s, g, v) for s, g, v in book["grades"]], columns=["student", "cell", "score"])
        scores = scores.pivot_table(index="student", columns="cell", values="score", aggfunc="first")
    else:
        scores = pd.DataFrame({s: {g: v[0] for g, v in (ledger[s].get("cells") or {}).items()}
                               for s in graded}).T
    scores = scores.reindex(index=graded, columns=ids).astype(float)
    scores.index.name = "student"
    table["score"] = scores.sum(axis=1, min_count=1).reindex(table.index)
    table["max_score"] = sum(e.points for e in exercises_)

    failures_ = read_failures(course, lab, exercises_, scores, begin, end)
    return LabData(lab, exercises_, table, scores, failures_, duedate=book["duedate"] if book else None,
                   has_gradebook=book is not None, secret_lines=secret_lines(exercises_, begin, end),
                   filters={"students": sorted(students) if students else None,
                            "since": since.isoformat() if since else None},
                   unknown_students=unknown)


def _finding(finding) -> str:
    if isinstance(finding, dict):
        return ", ".join(f"{k}: {v}" for k, v in finding.items())
    return str(finding)


def read_failures(course: Path, lab: str, exercises_: list[Exercise], scores: pd.DataFrame,
                  begin: str = failures.BEGIN, end: str = failures.END) -> pd.DataFrame:
    """One row per (student, graded cell) that lost points, with the reason found in the
    student's autograded notebook. Notebooks of students with full marks are not read."""
    points = {e.grade_id: e.points for e in exercises_}
    fallback = {e.grade_id: e.source for e in exercises_}
    rows = []
    for student, row in scores.iterrows():
        lost = [g for g, v in row.items() if pd.notna(v) and v < points[g]]
        if not lost:
            continue
        nb = read_json(layout.notebook(course, "autograded", lab, student=str(student)))
        cells = {} if nb is None else {_meta(c).get("grade_id"): c for c in nb["cells"] if _meta(c).get("grade_id")}
        for gid in lost:
            found = (CellFailure("no notebook") if nb is None
                     else failures.cell_failure(cells.get(gid), fallback[gid], begin, end))
            rows.append({"student": student, "cell": gid, "score": row[gid], "kind": found.kind,
                         "ename": found.ename, "message": found.message, "line": found.line, "where": found.where})
    columns = ["student", "cell", "score", "kind", "ename", "message", "line", "where"]
    return pd.DataFrame(rows, columns=columns)
