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

A case may say ``tier = "extended"``: ``course fidelity`` grades it, CI's fidelity test does not
(unless ``FIDELITY_TIER=all``). For a heavy lab's extra full-training groups: every case must
still agree, checked before a change lands, but CI's budget holds only the core.

Two more judgements come from the same grading run, at no extra cost:

- **Messages.** A mutant may declare ``message = "<regex>"``: the error of its first failing
  ``lose`` cell must match it and must be the course's own message (raised by a test cell or by
  ``helpers``), not a raw library traceback. Otherwise the case disagrees, even if it lost the
  right points: feedback is part of the verdict.
- **Caught visibly.** A mutant is caught visibly when every ``lose`` cell already failed in its
  visible checks, i.e. the student was told before grading. It is read from where each
  failing cell stopped (a line before or after ``### BEGIN HIDDEN TESTS``): the cells run top to
  bottom, so this is what a run without the hidden tests would show, unless hidden tests
  change state later cells read. ``visible_run=True`` checks that by grading the mutants a
  second time against the source with every hidden-test block removed.
"""
from __future__ import annotations

import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from coursetools import build, layout, nbgrader_ops, notebooks, table
from coursetools.report.failures import VISIBLE, CellFailure, cell_failure, hidden_lines
from coursetools.report.messages import strip_ansi

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
    message: str = ""   # regex the error of the first failing `lose` cell must match
    tier: str = "core"  # "extended": not in CI's fidelity test unless FIDELITY_TIER=all
    parts: list[Case] = field(default_factory=list)  # the cases a merged group combines

    @property
    def members(self) -> list[str]:
        return [part.name for part in self.parts]

    @property
    def size(self) -> int:
        """How many cases this one stands for (a merged group counts each member)."""
        return len(self.parts) or 1

    @property
    def units(self) -> list[Case]:
        """The cases judged one by one for messages and visibility: the members, or itself."""
        return self.parts or [self]

    @property
    def student(self) -> str:
        """The case's student id in the scratch gradebook."""
        return "case-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass
class Outcome:
    case: Case
    cells: dict[str, tuple[float, float]]  # grade id -> (score, max)
    problems: list[str]                    # why the scores differ from the expectation
    message_problems: list[str] = field(default_factory=list)
    visibly_lost: set[str] = field(default_factory=set)  # cells that failed in their visible checks
    messages_met: int = 0                  # units whose declared message was met
    visibility_mismatch: list[str] = field(default_factory=list)  # visible-only run vs failing lines

    @property
    def agrees(self) -> bool:
        return not self.problems and not self.message_problems

    @property
    def caught_visibly(self) -> int:
        """Units (members) every one of whose ``lose`` cells failed visibly."""
        if self.case.kind != "mutant" or self.problems:
            return 0
        return sum(all(c in self.visibly_lost for c in unit.lose) for unit in self.case.units)

    @property
    def score(self) -> float:
        return sum(s for s, _ in self.cells.values())

    @property
    def max_score(self) -> float:
        return sum(m for _, m in self.cells.values())


class CaseFileError(ValueError):
    """A cases file is malformed; the message names the file and the case."""


TIERS = ("core", "extended")


def load_cases(lab: str, cases_dir: Path = CASES_DIR, merge: bool = True,
               tiers: tuple[str, ...] = TIERS) -> list[Case]:
    """The built-in reference and blank cases, then the lab's mutants and variants of
    ``tiers`` (with ``merge``, each group combined into one case)."""
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
        unknown = set(raw) - {"name", "kind", "why", "replace", "lose", "may_lose", "group", "message", "tier"}
        if unknown:
            raise CaseFileError(f"{where}: unknown keys {sorted(unknown)}")
        case = Case(name=str(raw.get("name", "")), kind=str(raw.get("kind", "")),
                    why=str(raw.get("why", "")), replace=dict(raw.get("replace", {})),
                    lose=list(raw.get("lose", [])), may_lose=list(raw.get("may_lose", [])),
                    group=str(raw.get("group", "")), message=str(raw.get("message", "")),
                    tier=str(raw.get("tier", "core")))
        if case.tier not in TIERS:
            raise CaseFileError(f"{where}: tier must be one of {TIERS}, not {case.tier!r}")
        if not case.name or case.name in seen:
            raise CaseFileError(f"{where}: every case needs a unique name")
        if case.kind not in ("mutant", "variant"):
            raise CaseFileError(f"{where}: kind must be 'mutant' or 'variant', not {case.kind!r}")
        if not case.replace:
            raise CaseFileError(f"{where}: 'replace' must name at least one solution cell")
        if case.kind == "mutant" and not case.lose:
            raise CaseFileError(f"{where}: a mutant must list the graded cells it must lose in 'lose'")
        if case.kind == "variant" and (case.lose or case.may_lose or case.message):
            raise CaseFileError(f"{where}: a variant keeps full marks; it cannot list cells to lose or a message")
        try:
            re.compile(case.message)
        except re.error as exc:
            raise CaseFileError(f"{where}: message is not a valid regular expression: {exc}") from exc
        seen.add(case.name)
        if case.tier in tiers:
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
            merged.append(groups[case.group])
        combined = groups[case.group]
        if combined.kind != case.kind:
            raise CaseFileError(f"{where}: group {case.group!r} mixes mutants and variants")
        if combined.parts and combined.parts[0].tier != case.tier:
            raise CaseFileError(f"{where}: group {case.group!r} mixes tiers")
        clash = set(combined.replace) & set(case.replace)
        if clash:
            raise CaseFileError(f"{where}: cases in group {case.group!r} both replace {sorted(clash)}")
        if combined.replace:
            combined.name = combined.name[:-1] + f", {case.name}]"
            combined.why += f"; {case.why}"
        combined.parts.append(case)
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


# The innermost frame of an IPython (>= 8) traceback: a cell ("Cell In[12], line 3") or a file.
_FRAME = re.compile(r"^\s*(?:File\s+(?P<path>\S.*?):\d+(?:,\s+in\s|\s*$)|(?:Cell|Input) In\s*\[)")


def raised_in_library(traceback: list[str] | str) -> bool:
    """True when an error output's innermost frame is library code (torch, numpy, ...): neither a
    notebook cell nor the course's ``helpers``, whose errors are the course's messages."""
    text = strip_ansi(traceback if isinstance(traceback, str) else "\n".join(traceback))
    frames = [m for m in map(_FRAME.match, text.splitlines()) if m]
    if not frames or not frames[-1].group("path"):
        return False
    return "/helpers/" not in frames[-1].group("path").replace("\\", "/")


def read_failures(graded_nb: Path, lost: set[str]) -> dict[str, tuple[CellFailure, bool]]:
    """For each lost graded cell of an autograded notebook: why it failed (``cell_failure``: the
    error, and whether it stopped in visible or hidden checks) and whether the error came out
    of library code."""
    if not graded_nb.is_file():
        return {}
    found = {}
    for grade_id, cell in notebooks.graded_cells(notebooks.read(graded_nb)).items():
        if grade_id in lost:
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            found[grade_id] = (cell_failure(cell), bool(errors) and raised_in_library(errors[0].get("traceback", [])))
    return found


def judge_messages(case: Case, cells: dict[str, tuple[float, float]], order: list[str],
                   failures: dict[str, tuple[CellFailure, bool]]) -> tuple[list[str], int]:
    """Problems with the declared messages of a mutant (or of each member of a group), and how
    many were met. The judged error is that of the first ``lose`` cell, in notebook order, that
    lost points; a mutant that lost none is left to ``judge``."""
    problems, met = [], 0
    for unit in case.units if case.kind == "mutant" else []:
        lost = [c for c in order if c in unit.lose and c in cells and cells[c][0] < cells[c][1]]
        if not unit.message or not lost:
            continue
        failure, raw = failures.get(lost[0], (CellFailure("no notebook"), False))
        said = f"{failure.ename}: {failure.message}"
        short = said if len(said) <= 160 else said[:157] + "..."
        where = f"message of {unit.name} in {lost[0]}"
        if failure.kind != "error":
            problems.append(f"{where}: no error was shown ({failure.kind})")
        elif raw:
            problems.append(f"{where}: a raw library traceback ({short}) instead of the course's message")
        elif not re.search(unit.message, said):
            problems.append(f"{where}: {short!r} does not match {unit.message!r}")
        else:
            met += 1
    return problems, met


def submission_for(case: Case, release_nb, source_nb):
    if case.kind == "blank":
        return release_nb
    return notebooks.fill_solutions(release_nb, source_nb, case.replace)


def strip_hidden_tests(nb) -> None:
    """Remove every hidden-test block (delimiters included) from the graded cells of ``nb``."""
    for cell in notebooks.graded_cells(nb).values():
        hidden = hidden_lines(cell.source)
        cell.source = "\n".join(line for n, line in enumerate(cell.source.splitlines(), start=1) if n not in hidden)


def _grade(lab: str, cases: list[Case], course: Path, scratch: Path, workers: int, visible_only: bool = False):
    """Build a scratch course in ``scratch`` (with ``visible_only``, its source loses every
    hidden-test block), submit each case and grade them all; (results by student, source)."""
    from coursetools import grading

    build.scratch_course(course, scratch)
    if visible_only:
        path = layout.notebook(scratch, "source", lab)
        nb = notebooks.read(path)
        strip_hidden_tests(nb)
        notebooks.write(nb, path)
    nbgrader_ops.run(scratch, "generate_assignment", lab, "--force")
    release = notebooks.read(layout.notebook(scratch, "release", lab))
    source = notebooks.read(layout.notebook(scratch, "source", lab))
    solution_ids = set(notebooks.solution_cells(source))
    graded_ids = set(notebooks.graded_cells(source))
    for case in cases:
        check_case_names(case, solution_ids, graded_ids)
        notebooks.write_submission(scratch, case.student, lab, submission_for(case, release, source))
    results = grading.grade_lab(scratch, lab, workers=workers, force=True, progress=False)
    return {r.student: r for r in results}, source


def run_lab(lab: str, cases: list[Case] | None = None, course: Path = layout.REPO_ROOT,
            workdir: Path | None = None, workers: int = 1, visible_run: bool = False) -> tuple[list[Outcome], Path]:
    """Autograde every case of ``lab`` in one scratch course (with ``course grade``'s
    machinery, so a crashing case cannot stop the others); return outcomes and the scratch
    directory (for inspecting autograded notebooks; it lives as long as ``workdir``). With
    ``visible_run``, the mutants are graded once more without hidden tests (in
    ``<scratch>/visible-only``) and that run decides which cells failed visibly."""
    from coursetools import grading

    cases = cases if cases is not None else load_cases(lab)
    scratch = Path(workdir or tempfile.mkdtemp(prefix=f"fidelity-{lab}-"))
    results, source = _grade(lab, cases, course, scratch, workers)
    order = list(notebooks.graded_cells(source))
    visible_results = {}
    if visible_run:
        mutants = [c for c in cases if c.kind == "mutant"]
        visible_results, _ = _grade(lab, mutants, course, scratch / "visible-only", workers, visible_only=True)
    outcomes = []
    for case in cases:
        result = results[case.student]
        if result.status == grading.FAILED:
            outcomes.append(Outcome(case, {}, [f"was not graded: {result.reason}"]))
            continue
        cells = {name: (score, max_score) for name, (score, max_score) in result.cells.items()}
        lost = {c for c, (s, m) in cells.items() if s < m}
        failures = read_failures(layout.notebook(scratch, "autograded", lab, student=case.student), lost)
        # Fidelity cases are honest work: a code-policy or guard finding is a false positive.
        flagged = [f"flagged for review: {finding}" for finding in result.review]
        outcome = Outcome(case, cells, flagged + judge(case, cells))
        outcome.message_problems, outcome.messages_met = judge_messages(case, cells, order, failures)
        outcome.visibly_lost = {c for c, (f, _) in failures.items() if f.where == VISIBLE}
        if case.student in visible_results:
            alone = visible_results[case.student]
            inferred, outcome.visibly_lost = outcome.visibly_lost, {
                c for c, (s, m) in alone.cells.items() if s < m} if alone.status != grading.FAILED else set()
            outcome.visibility_mismatch = sorted(inferred ^ outcome.visibly_lost)
        outcomes.append(outcome)
    return outcomes, scratch


def summary(lab: str, outcomes: list[Outcome]) -> dict:
    """The report's numbers for one lab."""
    def of(kind):
        return [o for o in outcomes if o.case.kind == kind]

    ref, blank, mutants = of("reference"), of("blank"), of("mutant")
    return {
        "lab": lab,
        "reference": f"{ref[0].score:g}/{ref[0].max_score:g}" if ref else "-",
        "blank": f"{blank[0].score:g}/{blank[0].max_score:g}" if blank else "-",
        "mutants_caught": sum(o.case.size for o in mutants if not o.problems),
        "mutants": sum(o.case.size for o in mutants),
        "caught_visibly": sum(o.caught_visibly for o in mutants),
        "variants_accepted": sum(o.case.size for o in of("variant") if o.agrees),
        "variants": sum(o.case.size for o in of("variant")),
        "messages_met": sum(o.messages_met for o in mutants),
        "messages": sum(bool(u.message) for o in mutants for u in o.case.units),
        "disagreements": [f"{o.case.kind} {o.case.name}: {'; '.join(o.problems + o.message_problems)}"
                          for o in outcomes if not o.agrees],
        "visibility_notes": [f"{o.case.name}: the visible-only run and the failing lines differ on "
                             f"{', '.join(o.visibility_mismatch)}" for o in mutants if o.visibility_mismatch],
    }


def format_report(summaries: list[dict]) -> str:
    header = ["lab", "reference", "blank", "mutants caught", "caught visibly", "variants accepted",
              "messages met"]
    rows = [[s["lab"], s["reference"], s["blank"], f"{s['mutants_caught']}/{s['mutants']}",
             f"{s['caught_visibly']}/{s['mutants']}", f"{s['variants_accepted']}/{s['variants']}",
             f"{s['messages_met']}/{s['messages']}"] for s in summaries]
    lines = [table.format_table(header, rows)]
    for s in summaries:
        lines += [f"DISAGREES  {s['lab']}: {d}" for d in s["disagreements"]]
        lines += [f"NOTE       {s['lab']}: {n} (hidden tests that change later cells' state?)"
                  for n in s["visibility_notes"]]
    return "\n".join(lines)
