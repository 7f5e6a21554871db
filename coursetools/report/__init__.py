"""``course report``: what a lab's grading says about the class (issue 16, "Class insight").

After ``course grade`` an instructor has a gradebook, a ledger and hundreds of autograded
notebooks, and wants to know: who has not submitted or needs attention, which exercises the
class got wrong, *why* (the messages of the failing checks, counted), whether the visible
checks catch the common mistakes or students only fail on the hidden tests, and which
exercises tell strong from weak students. This package answers with one self-contained HTML
page per lab (figures embedded, opens offline) and the same tables as CSV and JSON beside it.

Modules, in the order the data flows:

- ``collect``: reads the gradebook, the ledger, the autograded and release/source notebooks;
- ``failures``: finds the failing line in a traceback and whether it is a hidden test;
- ``messages``: groups failure messages that differ only in numbers, values, shapes, paths;
- ``items``: item analysis (difficulty, discrimination);
- ``analysis``: the report's tables; ``plots`` and ``page``: figures and HTML;
- ``bench``: times the report on a synthetic class (``course report LAB --bench N``).

The report shows messages, never test code: tracebacks (which quote hidden tests) are read
for a line number and dropped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

REASONS_SHOWN = 8      # per exercise in the HTML (all of them are in the CSV)
FLAGGED_SHOWN = 60     # failed / needs-review submissions listed in the HTML
UNREMARKABLE = {"graded", "not submitted", "awaiting grading", "before --since"}


@dataclass
class LabReport:
    lab: str
    summary: dict
    files: dict[str, Path] = field(default_factory=dict)
    score_fraction: pd.Series | None = None


def write_lab(course: Path, data, out: Path, index: str | None = None) -> LabReport:
    """Write one lab's report for already collected ``data`` into ``out``: ``<lab>.html``,
    ``<lab>-students.csv``, ``<lab>-exercises.csv``, ``<lab>-reasons.csv`` and ``<lab>.json``.
    ``index``: a link back to the all-labs page."""
    from coursetools.report import analysis, items, page

    out.mkdir(parents=True, exist_ok=True)
    lab = data.lab
    summary = analysis.summary(data)
    exercises = analysis.exercise_table(data)
    reasons = analysis.reason_table(data, out, course)
    students = students_table(data)
    files = {"students": f"{lab}-students.csv", "exercises": f"{lab}-exercises.csv",
             "reasons": f"{lab}-reasons.csv", "json": f"{lab}.json"}

    html = page.render_lab(
        s=summary, generated=_now(), index=index, files=files,
        img=figures(data, exercises), exercises=_plain(exercises.to_dict("records")),
        reasons=reason_blocks(data, reasons), flagged=flagged(students)[:FLAGGED_SHOWN],
        flagged_more=max(0, len(flagged(students)) - FLAGGED_SHOWN),
        missing=[{"student": s, "status": r["status"]} for s, r in students.iterrows() if not r["graded"]],
        difficulty_text=items.DIFFICULTY_TEXT, discrimination_text=items.DISCRIMINATION_TEXT,
        metric_note=metric_note(lab))

    paths = {"html": out / f"{lab}.html"} | {k: out / v for k, v in files.items()}
    paths["html"].write_text(html, encoding="utf-8")
    students.to_csv(paths["students"])
    exercises.to_csv(paths["exercises"], index=False)
    reasons.to_csv(paths["reasons"], index=False)
    paths["json"].write_text(json.dumps(_plain({
        "summary": summary, "exercises": exercises.to_dict("records"), "reasons": reasons.to_dict("records"),
        "students": students.reset_index().to_dict("records")}), indent=1, default=str) + "\n", encoding="utf-8")
    fraction = data.students.loc[data.students["graded"], "score"] / data.max_score if data.max_score else None
    return LabReport(lab, summary, paths, fraction)


def write_reports(course: Path, labs: list[str], out: Path, students: list[str] | None = None,
                  since: date | None = None, skip_empty: bool = False) -> list[LabReport]:
    """Reports for ``labs``; with several labs also ``index.html`` and ``labs.csv`` linking them.
    ``skip_empty``: leave out labs nobody submitted (when reporting on every lab)."""
    from coursetools.report import collect, page, plots

    several = len(labs) > 1
    reports, skipped = [], []
    for lab in labs:
        data = collect.collect(course, lab, students, since)
        if skip_empty and not data.students["submitted"].any():
            skipped.append(lab)
            continue
        reports.append(write_lab(course, data, out, index="index.html" if several else None))
    if several:
        summaries = [r.summary for r in reports]
        image = plots.labs_overview(summaries, {r.lab: r.score_fraction for r in reports}) if reports else None
        filters = {"students": sorted(students) if students else None, "since": since.isoformat() if since else None}
        (out / "index.html").write_text(page.render_index(summaries=summaries, generated=_now(), img=image,
                                                          skipped=skipped, filters=filters), encoding="utf-8")
        columns = ["lab", "roster", "submitted", "completion", "graded", "failed", "needs_review", "awaiting",
                   "not_submitted", "late", "mean_score", "median_score", "max_score", "full_marks"]
        pd.DataFrame(summaries, columns=columns).to_csv(out / "labs.csv", index=False)
    return reports


def students_table(data) -> pd.DataFrame:
    """One row per student: status, timing, score, and the points of every graded cell."""
    table = data.students.copy()
    table["timestamp"] = table["timestamp"].map(lambda t: t.isoformat() if t is not None and pd.notna(t) else "")
    for column in ("reason", "notes", "review"):
        table[column] = table[column].map(lambda text: _redact(text, data.secret_lines))
    return table.join(data.scores, how="left")


def flagged(students: pd.DataFrame) -> list[dict]:
    """Submissions whose ledger status is not a plain "graded": failed, needs review, others."""
    rows = []
    for student, r in students.iterrows():
        if r["status"] not in UNREMARKABLE:
            rows.append({"student": student, "status": r["status"],
                         "why": "; ".join(x for x in (r["reason"], r["review"]) if x), "notes": r["notes"]})
    return rows


def reason_blocks(data, reasons: pd.DataFrame) -> list[dict]:
    """The most frequent reasons of each exercise, in notebook order, for the HTML."""
    blocks = []
    for e in data.exercises:
        rows = reasons[reasons["cell"] == e.grade_id]
        blocks.append({"name": e.name, "rows": _plain(rows.head(REASONS_SHOWN).to_dict("records")),
                       "more": max(0, len(rows) - REASONS_SHOWN)})
    return blocks


def figures(data, exercises: pd.DataFrame) -> dict[str, str | None]:
    """The lab page's figures as base64 PNGs; None where there is nothing to plot."""
    from coursetools.report import plots

    graded = data.students[data.students["graded"]]
    submitted = data.students[data.students["submitted"]]
    late = submitted["seconds_late"].fillna(0)
    times = pd.to_numeric(submitted["grading_seconds"], errors="coerce").dropna()
    return {
        "scores": plots.score_histogram(graded["score"], data.max_score) if len(graded) else None,
        "outcomes": plots.exercise_outcomes(exercises) if len(graded) and len(exercises) else None,
        "item_map": plots.item_map(exercises) if exercises["discrimination"].notna().any() else None,
        "time": plots.histogram(times, "seconds to grade one submission", "Grading time per submission")
        if len(times) else None,
        "late": plots.histogram(late[late > 0] / 3600, "hours late", "Late submissions", plots.ORANGE)
        if (late > 0).any() else None,
    }


def metric_note(lab: str) -> str:
    """Why the report shows grading time rather than the lab's key metric."""
    try:
        from coursetools import bench

        spec = bench.load_specs().get(lab, {})
    except Exception:  # noqa: BLE001
        spec = {}
    if spec.get("expression"):
        return (f"The lab's key metric ({spec.get('metric', spec['expression'])}; the expression "
                f"'{spec['expression']}' in benchmarks.toml) exists only inside each student's kernel while the "
                "notebook runs: grading does not record it, and recomputing it would mean executing every "
                "submission again. Shown instead: the time course grade spent per submission (the ledger's "
                "'seconds'), which includes the notebook's training.")
    return "The time course grade spent per submission (the ledger's 'seconds'), training included."


def _redact(text, secret_lines) -> str:
    from coursetools.report.messages import redact

    return redact(str(text or ""), secret_lines)


def _plain(value):
    """JSON-ready: NaN and NaT become null, numpy numbers become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return _plain(value.item())
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
