"""``course review LAB``: submissions the code policy or the guard flagged, and the decision.

A flagged submission was graded normally; its status is ``needs review`` with the findings.
An instructor reads the autograded notebook and either accepts the grade or zeroes it (every
cell's manual score set to 0 in the gradebook, so exports show 0). The decision is kept in
the ledger and stands across reruns while the submission is unchanged.
"""
from __future__ import annotations

from pathlib import Path

from coursetools.grading import ledger, merge
from coursetools.grading.ledger import GRADED, REVIEW, Result


def flagged(course: Path, lab: str) -> list[Result]:
    """Submissions with findings: awaiting a decision first, then decided ones."""
    entries = [r for r in ledger.read_all(course, lab) if r.review and r.status != ledger.FAILED]
    return sorted(entries, key=lambda r: (r.status != REVIEW, r.student))


def decide(course: Path, lab: str, student: str, decision: str) -> Result:
    """Record ``accepted`` or ``zeroed`` for a flagged submission and apply it to the gradebook."""
    if decision not in ("accepted", "zeroed"):
        raise ValueError(f"decision must be 'accepted' or 'zeroed', not {decision!r}")
    result = ledger.read(course, lab, student)
    if result is None or not result.review or result.status == ledger.FAILED:
        raise SystemExit(f"{student} has no flagged, graded submission of {lab}")
    result.decision, result.status = decision, GRADED
    merge.merge_into_gradebook(course, result)
    if decision == "zeroed":
        result.score = 0.0
    else:
        result.score = sum(v[0] or 0 for v in result.cells.values())
    ledger.write(course, result)
    return result


def format_flagged(results: list[Result]) -> str:
    if not results:
        return "no submission needs review"
    lines = []
    for r in results:
        state = "awaiting a decision" if r.status == REVIEW else f"decided: {r.decision}"
        lines.append(f"{r.student}  {r.lab}  score {r.score:g}/{r.max_score:g}  ({state})")
        lines += [f"    - {finding}" for finding in r.review]
    return "\n".join(lines)
