"""Grader fidelity: does the autograder tell right from wrong?

For each lab, ``tests/fidelity/<lab>.toml`` lists *mutants* (plausible wrong answers, which
must lose the points of the exercise they break and only those a reasonable grader would
take) and *variants* (valid alternatives, which must keep full marks). Every case is a
submission built from the lab's release notebook, filled with the reference solution except
the cells the case replaces, and autograded by nbgrader in a scratch course directory.
Two built-in cases frame them: ``reference`` (full marks) and ``blank`` (zero everywhere).

Heavy labs may put cases in a ``group``: cases of one group that replace different cells are
graded as one submission holding all their replacements, judged against the union of their
expectations (every ``lose`` cell of every member must lose points). This trades per-case
attribution for time: one training run instead of several. Group only mutants that break
independent exercises, or variants.
"""
from __future__ import annotations

import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from coursetools import build, layout, nbgrader_ops, notebooks, table

CASES_DIR = layout.REPO_ROOT / "tests" / "fidelity"
KINDS = ("reference", "blank", "mutant", "variant")


@dataclass
class Case:
    name: str
    kind: str
    why: str = ""
    replace: dict[str, str] = field(default_factory=dict)
    lose: list[str] = field(default_factory=list)
    may_lose: list[str] = field(default_factory=list)
    group: str = ""
    members: list[str] = field(default_factory=list)  # names of the cases a group combines

    @property
    def size(self) -> int:
        """How many cases this one stands for (a merged group counts each member)."""
        return len(self.members) or 1

    @property
    def student(self) -> str:
        """The case's student id in the scratch gradebook."""
        return "case-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass
class Outcome:
    case: Case
    cells: dict[str, tuple[float, float]]  # grade id -> (score, max)
    problems: list[str]                    # why the outcome differs from the expectation

    @property
    def agrees(self) -> bool:
        return not self.problems

    @property
    def score(self) -> float:
        return sum(s for s, _ in self.cells.values())

    @property
    def max_score(self) -> float:
        return sum(m for _, m in self.cells.values())


class CaseFileError(ValueError):
    """A cases file is malformed; the message names the file and the case."""


def load_cases(lab: str, cases_dir: Path = CASES_DIR, merge: bool = True) -> list[Case]:
    """The built-in reference and blank cases, then the lab's mutants and variants (with
    ``merge``, each group combined into one case)."""
    cases = [Case("reference", "reference", "the reference solution"),
             Case("blank", "blank", "the release notebook as handed out")]
    path = cases_dir / f"{lab}.toml"
    if not path.is_file():
        return cases
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CaseFileError(f"{path}: not valid TOML: {exc}") from exc
    seen = {"reference", "blank"}
    for i, raw in enumerate(data.get("case", []), start=1):
        where = f"{path.name}, case #{i} ({raw.get('name', 'unnamed')})"
        unknown = set(raw) - {"name", "kind", "why", "replace", "lose", "may_lose", "group"}
        if unknown:
            raise CaseFileError(f"{where}: unknown keys {sorted(unknown)}")
        case = Case(name=str(raw.get("name", "")), kind=str(raw.get("kind", "")),
                    why=str(raw.get("why", "")), replace=dict(raw.get("replace", {})),
                    lose=list(raw.get("lose", [])), may_lose=list(raw.get("may_lose", [])),
                    group=str(raw.get("group", "")))
        if not case.name or case.name in seen:
            raise CaseFileError(f"{where}: every case needs a unique name")
        if case.kind not in ("mutant", "variant"):
            raise CaseFileError(f"{where}: kind must be 'mutant' or 'variant', not {case.kind!r}")
        if not case.replace:
            raise CaseFileError(f"{where}: 'replace' must name at least one solution cell")
        if case.kind == "mutant" and not case.lose:
            raise CaseFileError(f"{where}: a mutant must list the graded cells it must lose in 'lose'")
        if case.kind == "variant" and (case.lose or case.may_lose):
            raise CaseFileError(f"{where}: a variant keeps full marks; it cannot list cells to lose")
        seen.add(case.name)
        cases.append(case)
    return merge_groups(cases, path.name) if merge else cases


def merge_groups(cases: list[Case], where: str = "") -> list[Case]:
    """Replace the members of each group by one combined case (see the module docstring)."""
    merged, groups = [], {}
    for case in cases:
        if not case.group:
            merged.append(case)
            continue
        if case.group not in groups:
            groups[case.group] = Case(f"{case.group}[{case.name}]", case.kind, case.why, group=case.group)
            groups[case.group].members = []
            merged.append(groups[case.group])
        combined = groups[case.group]
        if combined.kind != case.kind:
            raise CaseFileError(f"{where}: group {case.group!r} mixes mutants and variants")
        clash = set(combined.replace) & set(case.replace)
        if clash:
            raise CaseFileError(f"{where}: cases in group {case.group!r} both replace {sorted(clash)}")
        if combined.replace:
            combined.name = combined.name[:-1] + f", {case.name}]"
            combined.why += f"; {case.why}"
        combined.members.append(case.name)
        combined.replace.update(case.replace)
        combined.lose += case.lose
        combined.may_lose += case.may_lose
    return merged


def check_case_names(case: Case, solution_ids: set[str], graded_ids: set[str]) -> None:
    """Cell names in a case must exist in the lab, so a typo cannot make a case vacuous."""
    bad = sorted(set(case.replace) - solution_ids)
    if bad:
        raise CaseFileError(f"case {case.name}: no solution cell {bad}; solution cells are {sorted(solution_ids)}")
    bad = sorted(set(case.lose + case.may_lose) - graded_ids)
    if bad:
        raise CaseFileError(f"case {case.name}: no graded cell {bad}; graded cells are {sorted(graded_ids)}")


def judge(case: Case, cells: dict[str, tuple[float, float]]) -> list[str]:
    """What is wrong with a case's per-cell scores, given what the case expects."""
    full = {c for c, (s, m) in cells.items() if s >= m}
    lost = set(cells) - full
    if case.kind in ("reference", "variant"):
        return [f"lost points in {c} ({cells[c][0]:g}/{cells[c][1]:g})" for c in sorted(lost)]
    if case.kind == "blank":
        return [f"scored in {c} ({cells[c][0]:g}/{cells[c][1]:g})" for c in sorted(cells) if cells[c][0] > 0]
    problems = [f"not caught: {c} kept full marks" for c in case.lose if c in full]
    allowed = set(case.lose) | set(case.may_lose)
    problems += [f"over-penalised: lost points in {c}, which it should not affect" for c in sorted(lost - allowed)]
    return problems


def submission_for(case: Case, release_nb, source_nb):
    if case.kind == "blank":
        return release_nb
    return notebooks.fill_solutions(release_nb, source_nb, case.replace)


def run_lab(lab: str, cases: list[Case] | None = None, course: Path = layout.REPO_ROOT,
            workdir: Path | None = None, workers: int = 1) -> tuple[list[Outcome], Path]:
    """Autograde every case of ``lab`` in one scratch course (with ``course grade``'s
    machinery, so a crashing case cannot stop the others); return outcomes and the scratch
    directory (for inspecting autograded notebooks; it lives as long as ``workdir``)."""
    from coursetools import grading

    cases = cases if cases is not None else load_cases(lab)
    scratch = Path(workdir or tempfile.mkdtemp(prefix=f"fidelity-{lab}-"))
    build.scratch_course(course, scratch)
    nbgrader_ops.run(scratch, "generate_assignment", lab, "--force")
    release = notebooks.read(layout.notebook(scratch, "release", lab))
    source = notebooks.read(layout.notebook(scratch, "source", lab))
    solution_ids = set(notebooks.solution_cells(source))
    graded_ids = set(notebooks.graded_cells(source))
    for case in cases:
        check_case_names(case, solution_ids, graded_ids)
        notebooks.write_submission(scratch, case.student, lab, submission_for(case, release, source))
    results = {r.student: r for r in grading.grade_lab(scratch, lab, workers=workers, force=True, progress=False)}
    outcomes = []
    for case in cases:
        result = results[case.student]
        if result.status == grading.FAILED:
            outcomes.append(Outcome(case, {}, [f"was not graded: {result.reason}"]))
            continue
        cells = {name: (score, max_score) for name, (score, max_score) in result.cells.items()}
        # Fidelity cases are honest work: a code-policy or guard finding is a false positive.
        flagged = [f"flagged for review: {finding}" for finding in result.review]
        outcomes.append(Outcome(case, cells, flagged + judge(case, cells)))
    return outcomes, scratch


def summary(lab: str, outcomes: list[Outcome]) -> dict:
    """The report's numbers for one lab."""
    def of(kind):
        return [o for o in outcomes if o.case.kind == kind]

    ref, blank = of("reference"), of("blank")
    return {
        "lab": lab,
        "reference": f"{ref[0].score:g}/{ref[0].max_score:g}" if ref else "-",
        "blank": f"{blank[0].score:g}/{blank[0].max_score:g}" if blank else "-",
        "mutants_caught": sum(o.case.size for o in of("mutant") if o.agrees),
        "mutants": sum(o.case.size for o in of("mutant")),
        "variants_accepted": sum(o.case.size for o in of("variant") if o.agrees),
        "variants": sum(o.case.size for o in of("variant")),
        "disagreements": [f"{o.case.kind} {o.case.name}: {'; '.join(o.problems)}"
                          for o in outcomes if not o.agrees],
    }


def format_report(summaries: list[dict]) -> str:
    header = ["lab", "reference", "blank", "mutants caught", "variants accepted"]
    rows = [[s["lab"], s["reference"], s["blank"], f"{s['mutants_caught']}/{s['mutants']}",
             f"{s['variants_accepted']}/{s['variants']}"] for s in summaries]
    lines = [table.format_table(header, rows)]
    for s in summaries:
        for d in s["disagreements"]:
            lines.append(f"DISAGREES  {s['lab']}: {d}")
    return "\n".join(lines)
