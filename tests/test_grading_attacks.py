"""Hostile submissions against `course grade` (issue 12).

A student controls the code of their solution cells and may add cells. Every attack of
``tests/attacks/<lab>.toml`` is graded once, in one batch, beside honest canaries (the
reference solution, graded before, between and after the attackers), and then:

- every attacker meets its expectation: 0 points on the cells it cheated (a failed
  submission records no points either) or the status "needs review";
- every canary keeps full marks, whoever was graded before or beside it;
- the gradebook holds exactly the results, and ``grades.csv`` exactly the gradebook;
- nothing of an attack survives the batch: no process, no scratch folder, no marker text
  (attacks write ``ATTACK-MARK-<name>`` into whatever they reach; their sources only ever
  hold it split in two, so the text exists only where an attack put it) in the course, /tmp,
  /dev/shm or the home directory; the course's config, sources, release and submissions are
  byte-identical; autograded folders hold nothing but notebooks; no grader secret reaches a
  notebook;
- a control submission prints its marker into its own notebook, where the scan must find
  it: an attack that had worked would have been seen.

Each attack is bounded so that even a grader with no containment at all cannot damage the
machine (capped forks and writes, victims limited to this run's own students and files,
self-expiring files outside the course), and the fixture removes what escaped.
The default run grades the core tier (tests/attacks/README.md). Environment knobs:
``ATTACKS=name,class,tier,...`` (or ``all``) grades a selection, ``ATTACKS_KEEP=1`` keeps the
course folder, ``ATTACKS_REPORT=file`` writes one line per student and what escaped.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import os
import re
import shutil
import stat
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import psutil
import pytest

from coursetools import build, grading, layout, nbgrader_ops, notebooks
from conftest import ROOT, make_grading_course
from conftest import gradebook_snapshot as snapshot_of

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("grading-attacks")]

LAB = "lab01_perceptron"
CASES = Path(__file__).parent / "attacks" / f"{LAB}.toml"
LIMITS = grading.Limits(time_limit=120, memory_gb=4)
REVIEW = getattr(grading, "REVIEW", "needs review")
CLASSES = ("verdict", "answers", "escape", "resources")
EXPECTS = ("zero", "review", "zero-or-review", "contained")
KEYS = {"name", "class", "why", "expect", "tier", "replace", "prepend", "blank_rest", "cheated", "canary_after"}

MARK = "ATTACK-MARK-"          # written by attacks into what they reach
EVIDENCE = "ATTACK-EVIDENCE-"  # printed by attacks that beat a limit (must not survive either)
SECRET_VAR = "COURSE_GRADING_TOKEN"  # stands for a grader credential (a database password)
CANARY_FIRST, CANARY_LAST = "aaa-canary-first", "zzz-canary-last"
CONTROL = "ctl-visible-marker"
PLACEHOLDER = re.compile(r"@(MARK|EVIDENCE|ME|LAB|LIB:[a-z_]+)@")
HOME = Path.home()
HOME_DIRS = [HOME / ".ipython", HOME / ".jupyter", HOME / ".local" / "share" / "jupyter", HOME / ".config"]
SCAN_ROOTS = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")]
MAX_NOTEBOOK = 4 * 1024 ** 2    # an autograded notebook larger than this was flooded
MAX_OTHER_FILE = 1024 ** 2      # models/lab01_perceptron_or.pth is ~1 KB


# ---------------------------------------------------------------- the cases

@dataclass
class Attack:
    name: str
    cls: str
    why: str
    expect: str
    replace: dict[str, str]
    prepend: str | None = None
    blank_rest: bool = False
    cheated: list[str] = field(default_factory=list)
    canary_after: bool = False
    tier: str = "core"

    @property
    def student(self) -> str:
        return f"atk-{self.name}"

    @property
    def canary(self) -> str | None:
        return f"atk-{self.name}-zcanary" if self.canary_after else None


class AttackFileError(ValueError):
    pass


def expand(code: str, name: str, lib: dict[str, str]) -> str:
    """Fill the placeholders: @MARK@ / @EVIDENCE@ become expressions that build the marker at
    run time (the source never holds it whole), @ME@ the attacker's student id, @LAB@ the lab,
    @LIB:x@ the shared snippet x."""
    def fill(match):
        key = match.group(1)
        if key == "MARK":
            return f"('ATT' + 'ACK-MARK-{name}')"
        if key == "EVIDENCE":
            return f"('ATT' + 'ACK-EVIDENCE-{name}')"
        if key == "ME":
            return repr(f"atk-{name}")
        if key == "LAB":
            return repr(LAB)
        snippet = key.split(":", 1)[1]
        if snippet not in lib:
            raise AttackFileError(f"attack {name}: unknown snippet @{key}@")
        return PLACEHOLDER.sub(fill, lib[snippet].strip("\n"))
    out = PLACEHOLDER.sub(fill, code)
    if MARK in out or EVIDENCE in out:
        raise AttackFileError(f"attack {name}: write markers as @MARK@ / @EVIDENCE@, never literally")
    return out


def load_attacks(path: Path = CASES, solution_ids: set[str] | None = None,
                 graded_ids: set[str] | None = None) -> list[Attack]:
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise AttackFileError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(data) - {"attack", "lib"}
    if unknown:
        raise AttackFileError(f"{path.name}: unknown top-level keys {sorted(unknown)}")
    lib = {k: str(v) for k, v in data.get("lib", {}).items()}
    attacks, seen = [], set()
    for i, raw in enumerate(data.get("attack", []), start=1):
        where = f"{path.name}, attack #{i} ({raw.get('name', 'unnamed')})"
        if set(raw) - KEYS:
            raise AttackFileError(f"{where}: unknown keys {sorted(set(raw) - KEYS)}")
        name = str(raw.get("name", ""))
        if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) or name in seen:
            raise AttackFileError(f"{where}: needs a unique lowercase-dashed name")
        seen.add(name)
        attack = Attack(name=name, cls=str(raw.get("class", "")), why=str(raw.get("why", "")),
                        expect=str(raw.get("expect", "")),
                        replace={k: expand(str(v), name, lib) for k, v in raw.get("replace", {}).items()},
                        prepend=expand(raw["prepend"], name, lib) if "prepend" in raw else None,
                        blank_rest=bool(raw.get("blank_rest", False)), cheated=list(raw.get("cheated", [])),
                        canary_after=bool(raw.get("canary_after", False)), tier=str(raw.get("tier", "core")))
        if attack.cls not in CLASSES:
            raise AttackFileError(f"{where}: class must be one of {CLASSES}")
        if attack.expect not in EXPECTS:
            raise AttackFileError(f"{where}: expect must be one of {EXPECTS}")
        if attack.tier not in ("core", "extended"):
            raise AttackFileError(f"{where}: tier must be 'core' (the default) or 'extended'")
        if not attack.why:
            raise AttackFileError(f"{where}: say why (what the attack tries)")
        if not attack.replace and attack.prepend is None:
            raise AttackFileError(f"{where}: an attack needs 'replace' or 'prepend'")
        if solution_ids is not None and set(attack.replace) - solution_ids:
            raise AttackFileError(f"{where}: no solution cell {sorted(set(attack.replace) - solution_ids)}")
        if graded_ids is not None and set(attack.cheated) - graded_ids:
            raise AttackFileError(f"{where}: no graded cell {sorted(set(attack.cheated) - graded_ids)}")
        attacks.append(attack)
    return attacks


def selected(attacks: list[Attack]) -> list[Attack]:
    """The attacks to grade: the core tier, or what ATTACKS names (attack names, classes,
    "extended", "all")."""
    wanted = [w for w in os.environ.get("ATTACKS", "").split(",") if w]
    if not wanted:
        return [a for a in attacks if a.tier == "core"]
    return [a for a in attacks if "all" in wanted or a.name in wanted or a.cls in wanted or a.tier in wanted]


def submission(attack: Attack, release, source):
    replace = dict(attack.replace)
    if attack.blank_rest:
        for grade_id in notebooks.solution_cells(release):
            replace.setdefault(grade_id, "")
    nb = notebooks.fill_solutions(release, source, replace)
    if attack.prepend is not None:
        first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
        nb.cells.insert(first_code + 1, nbformat.v4.new_code_cell(attack.prepend, id="added-by-student"))
    return nb


# ---------------------------------------------------------------- looking for what escaped

def hash_tree(root: Path, parts: list[str]) -> dict[str, str]:
    out = {}
    for part in parts:
        base = root / part
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file() or p.is_symlink())
        for path in files:
            rel = str(path.relative_to(root))
            out[rel] = "symlink" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def scan(roots: list[Path], needles: list[bytes], newer_than: float | None = None,
         skip: tuple[Path, ...] = (), max_files: int = 200_000) -> list[tuple[str, str]]:
    """(path, marker) for every marker (a needle and the name that follows it) in the regular
    files under ``roots`` (with ``newer_than``: modified after it). Symlinks are not followed;
    files past 256 MB are scanned in their first and last 16 MB only."""
    hits, count = [], 0
    chunk = 16 * 1024 ** 2
    pattern = re.compile(b"(" + b"|".join(re.escape(n) for n in needles) + rb")[a-z0-9-]*")
    for root in roots:
        if not root.exists():
            continue
        for folder, dirs, files in os.walk(root):
            if any(Path(folder).is_relative_to(s) for s in skip):
                dirs[:] = []
                continue
            for name in files:
                count += 1
                if count > max_files:
                    return hits + [(str(root), "scan stopped: too many files")]
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode) or (newer_than and max(st.st_mtime, st.st_ctime) < newer_than):
                        continue
                    with open(path, "rb") as f:
                        if st.st_size > 256 * 1024 ** 2:
                            blocks = [f.read(chunk)]
                            f.seek(st.st_size - chunk)
                            blocks.append(f.read(chunk))
                        else:
                            blocks = [f.read()]
                except OSError:
                    continue
                found = {m.group(0).decode() for block in blocks for m in pattern.finditer(block)}
                hits += [(path, mark) for mark in sorted(found)]
    return hits


@dataclass
class Leftover:
    pid: int
    created: float
    why: str
    ours: bool
    cmd: str
    cwd: str

    def __str__(self):
        cmd = " ".join(self.cmd.split())
        token = re.search(r"atk-proc-[a-z0-9-]+", cmd)
        shown = (token.group(0) + ": " if token else "") + (cmd[:100] + " ..." if len(cmd) > 100 else cmd)
        return f"pid {self.pid} ({self.why}) {shown} [cwd {self.cwd}]"

    def attack(self) -> str | None:
        m = re.search(r"atk-proc-([a-z0-9-]+)", self.cmd) or re.search(r"/autograded/atk-([a-z0-9-]+)/", self.cwd + "/")
        return m.group(1) if m else None


def process_info(p: psutil.Process) -> tuple[str, str, dict, int]:
    cmd = " ".join(p.cmdline())
    try:
        cwd = p.cwd()
    except (psutil.AccessDenied, psutil.ZombieProcess, FileNotFoundError):
        cwd = ""
    try:
        env = p.environ()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        env = {}
    return cmd, cwd, env, p.uids().real


def leftover_processes(before: set, related: list[str], secret: str) -> list[Leftover]:
    """Processes started since ``before`` and still alive that belong to this run: spawned by
    an attack ("atk-proc-" on the command line), inheriting the grader's environment (its
    secret), working in the course or a scratch folder, or running under another uid than
    root with no ancestor older than the run but init (an orphan from a sandbox)."""
    found = []
    for p in psutil.process_iter():
        try:
            created = p.create_time()
            if (p.pid, created) in before or p.pid == os.getpid() or p.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd, cwd, env, uid = process_info(p)
            why = []
            if "atk-proc-" in cmd:
                why.append("spawned by an attack")
            if env.get(SECRET_VAR) == secret:
                why.append("inherits the grader's environment")
            if any(r in cmd or cwd.startswith(r) or any(r in v for v in env.values()) for r in related):
                why.append("works in the course or a scratch folder")
            ours = bool(why)
            if uid != 0 and p.username() != "postgres":
                if not any((a.pid, a.create_time()) in before for a in p.parents() if a.pid != 1):
                    why.append(f"orphan running as uid {uid}")
            if why:
                found.append(Leftover(p.pid, created, ", ".join(why), ours, cmd, cwd))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _safe_ctime(p) -> bool:
    try:
        p.create_time()
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def kill_ours(found: list[Leftover]) -> None:
    """Teardown: end the processes this run's attacks left (by pid, checking it is still the
    same process)."""
    victims = []
    for left in found:
        if not left.ours:
            continue
        try:
            p = psutil.Process(left.pid)
            if p.create_time() == left.created:
                p.kill()
                victims.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(victims, timeout=10)


def ours_under(folder: Path, students: set[str]) -> bool:
    """Does ``folder`` (a scratch course) hold a submission or autograded copy of ours?"""
    for sub in ("submitted", "autograded"):
        try:
            if any(entry.name in students for entry in (folder / sub).iterdir()):
                return True
        except OSError:
            pass
    return False


def new_scratch_folders(before: set[str], course: Path, students: set[str]) -> list[str]:
    """Folders created in /tmp during the run (two levels deep) that hold this run's students,
    apart from the course itself: scratch copies the grader left behind."""
    left = []
    for top in sorted(set(glob.glob("/tmp/*")) - before):
        top_path = Path(top)
        if not top_path.is_dir() or top_path.is_symlink() or course.is_relative_to(top_path):
            continue
        candidates = [top_path] + [p for p in top_path.glob("*") if p.is_dir() and not p.is_symlink()]
        if any(ours_under(c, students) for c in candidates):
            left.append(top)
    return left


def attack_files(before: set[str]) -> list[str]:
    """Files or folders named atk-* created outside the course during the run."""
    now = set()
    for pattern in ("/tmp/atk-*", "/var/tmp/atk-*", "/dev/shm/atk-*", str(HOME / ".ipython/profile_*/startup/*atk*"),
                    str(HOME / ".jupyter/*atk*"), str(HOME / ".jupyter/*.py")):
        now |= set(glob.glob(pattern))
    return sorted(now - before)


def remove_path(path: str) -> None:
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


# ---------------------------------------------------------------- the batch

def make_course(path: Path) -> tuple[Path, object, object]:
    return make_grading_course(path, LAB)


def gradebook_snapshot(course: Path) -> dict:
    return snapshot_of(course, LAB)


@dataclass
class Batch:
    course: Path
    attacks: list[Attack]
    canaries: list[str]
    results: dict
    crashed: str
    seconds: float
    secret: str
    hashes_before: dict
    hashes_after: dict
    processes: list
    scratch_left: list
    files_left: list
    markers: list          # (path, marker) outside the control's own notebook
    control_hits: list     # where the control's marker was found
    secret_hits: list


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    course, release, source = make_course(tmp_path_factory.mktemp("attacks"))
    attacks = selected(load_attacks(solution_ids=set(notebooks.solution_cells(source)),
                                    graded_ids=set(notebooks.graded_cells(source))))
    reference = notebooks.fill_solutions(release, source)
    canaries = [CANARY_FIRST, CANARY_LAST] + [a.canary for a in attacks if a.canary]
    for student in canaries:
        notebooks.write_submission(course, student, LAB, reference)
    control = notebooks.fill_solutions(release, source, {
        "ex1_data": notebooks.solution_cells(source)["ex1_data"].source + f'\nprint("ATT" + "ACK-MARK-{CONTROL}")'})
    notebooks.write_submission(course, CONTROL, LAB, control)
    for attack in attacks:
        notebooks.write_submission(course, attack.student, LAB, submission(attack, release, source))
    students = set(canaries) | {CONTROL} | {a.student for a in attacks}

    start = time.time() - 1
    inputs = ["nbgrader_config.py", "source", "release", "submitted"]
    hashes_before = hash_tree(course, inputs)
    procs_before = {(p.pid, p.create_time()) for p in psutil.process_iter() if _safe_ctime(p)}
    tmp_before = set(glob.glob("/tmp/*"))
    files_before = set(attack_files(set()))
    secret = "ATTACK-SECRET-" + uuid.uuid4().hex
    related = [str(course)]
    try:
        os.environ[SECRET_VAR] = secret
        crashed, results = "", {}
        t0 = time.perf_counter()
        try:
            results = {r.student: r for r in grading.grade_lab(course, LAB, workers=2, limits=LIMITS, progress=False)}
        except Exception as exc:  # noqa: BLE001 - one attacker taking the batch down is a finding
            crashed = f"{type(exc).__name__}: {exc}"[:2000]
        finally:
            del os.environ[SECRET_VAR]
        seconds = time.perf_counter() - t0

        scratch_left = new_scratch_folders(tmp_before, course, students)
        related += scratch_left  # only folders that hold this run's students: other runs may grade beside us
        processes = leftover_processes(procs_before, related, secret)
        files_left = attack_files(files_before)
        needles = [MARK.encode(), EVIDENCE.encode()]
        course_hits = scan([course], needles)
        control_hits = [h for h in course_hits if h[1] == MARK + CONTROL]
        markers = [h for h in course_hits if h[1] != MARK + CONTROL]
        markers += scan(SCAN_ROOTS, needles, newer_than=start, skip=(course,))
        markers += scan([d for d in HOME_DIRS if d.exists()], needles, newer_than=start)
        markers = [h for h in markers if h[1] != MARK + CONTROL]  # the control may sit in a scratch copy too
        secret_hits = scan([course], [secret.encode()]) + scan(SCAN_ROOTS + HOME_DIRS, [secret.encode()],
                                                              newer_than=start, skip=(course,))
        hashes_after = hash_tree(course, inputs)

        found = Batch(course, attacks, canaries, results, crashed, seconds, secret, hashes_before, hashes_after,
                      processes, scratch_left, files_left, markers, control_hits, secret_hits)
        if os.environ.get("ATTACKS_REPORT"):
            write_report(found, Path(os.environ["ATTACKS_REPORT"]))
        yield found
    finally:
        # whatever the attacks left outside the course, then the course itself
        kill_ours(leftover_processes(procs_before, related, secret))
        for path in attack_files(files_before):
            remove_path(path)
        for folder in glob.glob("/tmp/*"):
            if folder not in tmp_before and not course.is_relative_to(folder) and Path(folder).is_dir() \
                    and (ours_under(Path(folder), students) or any(ours_under(p, students) for p in Path(folder).glob("*"))):
                shutil.rmtree(folder, ignore_errors=True)
        if not os.environ.get("ATTACKS_KEEP"):
            shutil.rmtree(course, ignore_errors=True)


def write_report(batch: Batch, path: Path) -> None:
    """For debugging (ATTACKS_REPORT=file): one line per student, then what escaped."""
    lines = [f"batch: {batch.seconds:.0f} s{'; CRASHED: ' + batch.crashed if batch.crashed else ''}"]
    for attack in batch.attacks:
        r = batch.results.get(attack.student)
        outcome = "no result" if r is None else f"{r.status:8} {r.score}/{r.max_score} {r.reason[:60]}"
        escaped = _escapes_of(batch, attack)
        lines.append(f"{attack.cls:9} {attack.name:26} {attack.expect:15} {outcome}"
                     + (f"  ESCAPED: {'; '.join(escaped)[:300]}" if escaped else ""))
    for student in batch.canaries + [CONTROL]:
        r = batch.results.get(student)
        lines.append(f"{'canary':9} {student:26} {'':15} " + ("no result" if r is None else f"{r.status:8} {r.score}/{r.max_score} {r.reason[:60]}"))
    lines += [f"process: {left}" for left in batch.processes[:10]] + [f"scratch: {f}" for f in batch.scratch_left]
    lines += [f"file: {f}" for f in batch.files_left] + [f"marker: {p} {m}" for p, m in sorted(set(batch.markers))]
    lines += [f"secret: {p}" for p, _ in batch.secret_hits]
    changed = sorted(k for k in set(batch.hashes_before) | set(batch.hashes_after)
                     if batch.hashes_before.get(k) != batch.hashes_after.get(k))
    lines += [f"changed: {k}" for k in changed]
    path.write_text("\n".join(lines) + "\n")


def attack_names() -> list[str]:
    try:
        return [a.name for a in load_attacks()]
    except AttackFileError:
        return []


# ---------------------------------------------------------------- the verdicts

def test_attack_file_is_valid(monkeypatch):
    monkeypatch.delenv("ATTACKS", raising=False)
    source = notebooks.read(layout.notebook(ROOT, "source", LAB))
    attacks = load_attacks(solution_ids=set(notebooks.solution_cells(source)),
                           graded_ids=set(notebooks.graded_cells(source)))
    core = [a for a in attacks if a.tier == "core"]
    assert {a.cls for a in core} == set(CLASSES), "every class of the threat model needs a core attack"
    assert any(a.prepend is not None for a in core), "attacks in an added cell are part of the model"
    from IPython.core.inputtransformer2 import TransformerManager

    ipython = TransformerManager()
    for attack in attacks:
        for cell in list(attack.replace.values()) + [attack.prepend or ""]:
            assert MARK not in cell and EVIDENCE not in cell and not PLACEHOLDER.search(cell), attack.name
            compile(ipython.transform_cell(cell), f"<{attack.name}>", "exec")  # magics included


def test_the_batch_completed(batch):
    assert not batch.crashed, f"an attack took the whole batch down: {batch.crashed}"
    expected = {a.student for a in batch.attacks} | set(batch.canaries) | {CONTROL}
    assert set(batch.results) == expected
    for student, r in batch.results.items():
        assert r.status in (grading.GRADED, grading.FAILED, REVIEW), f"{student}: {r.status}"


def _owner(mark: str, attacks: list[Attack]) -> str | None:
    """The attack a marker names (the longest name it starts with: text may follow it)."""
    names = [a.name for a in attacks if mark.split("-", 2)[-1].startswith(a.name)]
    return max(names, key=len) if names else None


def _escapes_of(batch: Batch, attack: Attack) -> list[str]:
    """What of this attack got out: its marker anywhere, its processes, its files."""
    found = [f"marker in {path}" for path, mark in batch.markers if _owner(mark, batch.attacks) == attack.name]
    found += [f"process {left}" for left in batch.processes if left.attack() == attack.name]
    found += [f"the grader's secret in {path}" for path, _ in batch.secret_hits if f"/autograded/{attack.student}/" in path]
    found += [f"left {path}" for path in batch.files_left if f"atk-{attack.name}" in path]
    found += [f"autograded/{attack.student}: {p}" for p in _extra_autograded(batch.course, attack.student)]
    return found


@pytest.mark.parametrize("name", attack_names())
def test_attacker_meets_expectation(batch, name):
    attack = next((a for a in batch.attacks if a.name == name), None)
    if attack is None:
        pytest.skip("not selected (extended tier, or ATTACKS names others)")
    assert not batch.crashed, f"the batch crashed: {batch.crashed}"
    r = batch.results[attack.student]
    review = getattr(r, "review", None) or []
    shown = f"{r.status} {r.score}/{r.max_score} {r.status_text} cells={r.cells} review={review}"
    if attack.expect != "contained":
        cheated = attack.cheated or sorted(r.cells)
        zero = r.status == grading.FAILED or (r.score is not None and all(r.cells.get(c, [0])[0] == 0 for c in cheated))
        is_review = r.status == REVIEW
        if attack.expect == "review":
            assert is_review, f"{attack.name} ({attack.cls}) should need review: {shown}"
            assert review, f"{attack.name}: a review needs findings"
        elif attack.expect == "zero":
            assert zero, f"{attack.name} ({attack.cls}) cheated its way to points: {shown}"
        else:
            assert zero or is_review, f"{attack.name} ({attack.cls}) cheated its way to points unflagged: {shown}"
    escaped = _escapes_of(batch, attack)
    assert not escaped, f"{attack.name} ({attack.cls}) got out: " + "; ".join(escaped[:10])


def test_canaries_keep_full_marks(batch):
    assert not batch.crashed, f"the batch crashed: {batch.crashed}"
    bad = {s: batch.results[s].status_text + f" {batch.results[s].score}/{batch.results[s].max_score}"
           for s in batch.canaries + [CONTROL]
           if batch.results[s].status != grading.GRADED or batch.results[s].score != batch.results[s].max_score}
    assert not bad, f"honest students were affected: {bad}"


def test_control_marker_is_visible(batch):
    """The positive control: an attack that had written its marker anywhere in the course
    would have been found, as the control's printed marker is found in its notebook."""
    control_nb = str(layout.notebook(batch.course, "autograded", LAB, student=CONTROL))
    assert control_nb in [h[0] for h in batch.control_hits], "the control's printed marker was not found"
    # the submissions hold every attack's source; the split markers there are not matches
    assert not any("/submitted/" in path for path, _ in batch.markers)


def test_gradebook_matches_results(batch):
    assert not batch.crashed, f"the batch crashed: {batch.crashed}"
    snapshot = gradebook_snapshot(batch.course)
    for student, r in batch.results.items():
        if r.status == grading.GRADED:
            assert student in snapshot, f"{student} was graded but is not in the gradebook"
        if r.status == grading.FAILED:
            assert student not in snapshot, f"{student} failed but has a grade"
        if student in snapshot:
            score, max_score, cells = snapshot[student]
            assert (score, max_score) == (r.score, r.max_score), f"{student}: gradebook {score} != result {r.score}"
            assert dict(cells) == {k: tuple(v) for k, v in r.cells.items()}, student
    nbgrader_ops.run(batch.course, "export")
    with open(batch.course / "grades.csv") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f) if row["assignment"] == LAB}
    for student, (score, max_score, _cells) in snapshot.items():
        assert float(rows[student]["raw_score"]) == score, f"grades.csv disagrees for {student}"
    for student, row in rows.items():
        if student not in snapshot:
            assert float(row["raw_score"]) == 0, f"grades.csv gives {student} points the gradebook does not"


def test_course_inputs_unchanged(batch):
    before, after = batch.hashes_before, batch.hashes_after
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"config, sources, release or submissions changed during grading: {changed[:20]}"


def _extra_autograded(course: Path, student: str) -> list[str]:
    """Files in autograded/<student>/<lab> besides the notebook, timestamp.txt,
    submission_secret.txt and the saved model; and any file above its size limit."""
    folder = course / "autograded" / student / LAB
    if not folder.exists():
        return []
    extra = []
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            extra.append(f"{rel} (special file)")
            continue
        if path.is_dir():
            if rel != "models":
                extra.append(f"{rel}/")
            continue
        size = path.stat().st_size
        if rel == f"{LAB}.ipynb":
            if size > MAX_NOTEBOOK:
                extra.append(f"{rel} is {size / 1024 ** 2:.0f} MB")
        elif rel in ("timestamp.txt", "submission_secret.txt", "models/lab01_perceptron_or.pth"):
            if size > MAX_OTHER_FILE:
                extra.append(f"{rel} is {size / 1024 ** 2:.0f} MB")
        else:
            extra.append(rel)
    return extra


def test_autograded_holds_only_notebooks(batch):
    folder = batch.course / "autograded"
    problems = {}
    for student_dir in sorted(folder.iterdir()) if folder.exists() else []:
        extra = [p.name for p in student_dir.iterdir() if p.name != LAB]
        extra += _extra_autograded(batch.course, student_dir.name)
        if extra:
            problems[student_dir.name] = extra[:5]
    assert not problems, f"autograded folders hold more than notebooks: {problems}"


def test_no_process_survives(batch):
    assert not batch.processes, (f"{len(batch.processes)} processes outlived the batch:\n"
                                 + "\n".join(str(left) for left in batch.processes[:20]))


def test_no_scratch_folder_left(batch):
    assert not batch.scratch_left, f"scratch folders left in /tmp: {batch.scratch_left}"


def test_no_marker_escaped(batch):
    hits = sorted(set(batch.markers))
    files = batch.files_left
    assert not hits and not files, (f"attack markers outside the attackers' own notebooks: {hits[:20]}; "
                                     f"attack files left: {files[:20]}")


def test_grader_secret_never_reaches_a_notebook(batch):
    assert not batch.secret_hits, f"the grader's environment leaked into: {sorted(set(p for p, _ in batch.secret_hits))[:10]}"


def test_scan_sees_a_planted_marker_and_not_a_split_one(tmp_path):
    """The scan that judges escapes is not vacuous: a whole marker is found wherever it is, a
    marker split in a source is not."""
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "planted.bin").write_bytes(b"\0" * 1000 + (MARK + "demo").encode() + b"\0")
    (tmp_path / "source.py").write_text('x = ("ATT" + "ACK-MARK-demo")')
    hits = scan([tmp_path], [MARK.encode()])
    assert hits == [(str(tmp_path / "deep" / "er" / "planted.bin"), MARK + "demo")]
    assert expand("open(p, 'w').write(@MARK@)", "demo", {}) == "open(p, 'w').write(('ATT' + 'ACK-MARK-demo'))"
