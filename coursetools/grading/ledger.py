"""What the coordinator remembers of each graded submission: ``grading/<lab>/<student>.json``.

A ledger entry holds the outcome (status, notes, review findings, per-cell scores) and two
digests: of the submission's files (a changed resubmission is regraded) and of the scores as
merged into the gradebook. ``verify`` compares the gradebook with the ledger, so scores changed
behind the grader's back (by a process that outlived its sandbox, or by hand in the database)
are noticed before grading or exporting; ``course review`` records an instructor's decision.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

GRADED, FAILED, SKIPPED, REVIEW = "graded", "failed", "skipped", "needs review"
LEDGER_DIR = "grading"


@dataclass
class Result:
    student: str
    lab: str
    status: str                                   # graded | needs review | failed | skipped
    reason: str = ""                              # why it failed (failed only)
    notes: list[str] = field(default_factory=list)  # what was noticed or repaired
    score: float | None = None
    max_score: float | None = None
    cells: dict[str, list[float]] = field(default_factory=dict)
    timestamp: str | None = None
    seconds: float = 0.0
    digest: str = ""
    autograded_dir: str = ""                      # scratch copy, moved by the coordinator
    reused: bool = False                          # taken from the ledger, not regraded
    review: list[str] = field(default_factory=list)  # code-policy and guard findings
    decision: str = ""                            # an instructor's: "" | accepted | zeroed
    sandbox: str = ""                             # how the kernel was contained
    scores_digest: str = ""                       # digest of the cell scores merged into the gradebook

    @property
    def status_text(self) -> str:
        if self.status == FAILED:
            return f"failed: {self.reason}"
        if self.status == REVIEW:
            return "needs review: " + "; ".join(self.review[:3]) + (
                f"; and {len(self.review) - 3} more" if len(self.review) > 3 else "")
        text = self.status + (f" ({'; '.join(self.notes)})" if self.notes else "")
        if self.decision:
            text += f" [review: {self.decision}]"
        return text

    @property
    def crashed(self) -> bool:
        """The grader itself failed (never a verdict on the submission): never reused."""
        return self.status == FAILED and self.reason.startswith("grader crashed")


def scores_digest(cells: dict) -> str:
    """A digest of per-cell auto scores, order-independent."""
    canonical = json.dumps({k: [float(v[0]) if v[0] is not None else None] for k, v in sorted(cells.items())},
                           sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def path(course: Path, lab: str, student: str) -> Path:
    return course / LEDGER_DIR / lab / f"{student}.json"


def read(course: Path, lab: str, student: str) -> Result | None:
    try:
        data = json.loads(path(course, lab, student).read_text())
        known = set(Result.__dataclass_fields__)
        return Result(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None


def read_all(course: Path, lab: str) -> list[Result]:
    folder = course / LEDGER_DIR / lab
    found = [read(course, lab, p.stem) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return [r for r in found if r is not None]


def atomic_write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, target)


def write(course: Path, result: Result) -> None:
    stored = asdict(result) | {"autograded_dir": "", "reused": False}
    atomic_write(path(course, result.lab, result.student), json.dumps(stored, indent=2))


def verify(course: Path, lab: str) -> list[str]:
    """Students whose gradebook scores differ from what the grader merged (empty: all agree)."""
    from coursetools import nbgrader_ops

    try:
        in_gradebook = {r.student: r for r in nbgrader_ops.scores(course, lab, auto=True)}
    except Exception:  # noqa: BLE001 - no gradebook or no such lab yet: nothing to compare
        return []
    problems = []
    for result in read_all(course, lab):
        row = in_gradebook.pop(result.student, None)
        if result.status in (GRADED, REVIEW):
            if row is None:
                problems.append(f"{result.student}: graded by the grader but missing from the gradebook")
            elif result.scores_digest and scores_digest(row.cells) != result.scores_digest:
                problems.append(f"{result.student}: gradebook scores {_fmt(row.cells)} differ from the "
                                f"ledger's {_fmt(result.cells)}")
        elif row is not None:
            problems.append(f"{result.student}: in the gradebook, but the grader recorded {result.status_text}")
    return problems


def _fmt(cells: dict) -> str:
    return "{" + ", ".join(f"{k}: {v[0]:g}" for k, v in sorted(cells.items()) if v[0] is not None) + "}"
