"""Taking a submission in: what is read from ``submitted/<student>/<lab>`` and how.

Only ``<lab>.ipynb`` (or the one notebook a student renamed), ``timestamp.txt`` and
``submission_secret.txt`` (made when missing) are taken, as regular files; a folder holding
symlinks, FIFOs, sockets or device files is refused with a status, and the original folder is
never modified. The copy is repaired where nbgrader would choke (duplicated graded cells) and
the repairs are noted.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import shutil
import stat
from datetime import datetime
from pathlib import Path

import nbformat

from coursetools import layout, notebooks

MAX_NOTEBOOK_BYTES = 64 * 1024 ** 2
SECRET_FILE = "submission_secret.txt"
MAX_SECRET_CHARS = 256


class SubmissionProblem(Exception):
    """The submission cannot be graded; the message is the status reason."""


def _entries(folder: Path) -> list[Path]:
    """Everything below ``folder`` without following symlinks."""
    return sorted(folder.rglob("*"))


def special_files(folder: Path) -> list[str]:
    """Entries that are neither regular files nor directories (symlinks included)."""
    odd = []
    for entry in _entries(folder):
        mode = entry.lstat().st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            kind = ("symlink" if stat.S_ISLNK(mode) else "FIFO" if stat.S_ISFIFO(mode) else
                    "socket" if stat.S_ISSOCK(mode) else "device file")
            odd.append(f"{entry.relative_to(folder)} ({kind})")
    return odd


def digest(folder: Path) -> str:
    """Hash of a submission folder (names, kinds, regular files' bytes): a changed
    resubmission is regraded. Never opens anything but regular files."""
    h = hashlib.sha256()
    if not folder.is_dir():
        return "missing"
    for entry in _entries(folder):
        mode = entry.lstat().st_mode
        h.update(str(entry.relative_to(folder)).encode() + b"\0" + str(stat.S_IFMT(mode)).encode())
        if stat.S_ISREG(mode):
            with open(entry, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def read_timestamp(folder: Path, notes: list[str]) -> str | None:
    """The submission time, or None with a note when timestamp.txt is missing or malformed."""
    path = folder / "timestamp.txt"
    if not path.is_file():
        notes.append("no timestamp.txt (lateness unknown)")
        return None
    text = path.read_text(errors="replace")[:200].strip()
    try:
        datetime.strptime(text, notebooks.TIMESTAMP_FORMAT)
    except ValueError:
        try:
            from dateutil.parser import parse

            parse(text)
        except (ValueError, OverflowError):
            notes.append(f"malformed timestamp.txt {text[:40]!r} ignored (lateness unknown)")
            return None
    return text


def prepare(course: Path, scratch: Path, lab: str, student: str) -> tuple[list[str], str | None]:
    """Copy the gradable part of ``submitted/<student>/<lab>`` into the scratch course.
    Returns notes and the usable timestamp; raises SubmissionProblem when there is nothing
    gradable."""
    original = course / "submitted" / student / lab
    target = scratch / "submitted" / student / lab
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    odd = special_files(original)
    if odd:
        raise SubmissionProblem(f"refused: the submission holds {', '.join(odd[:3])}; only regular files are accepted")
    notes: list[str] = []
    expected = original / f"{lab}.ipynb"
    if not expected.is_file():
        others = sorted(p for p in original.glob("*.ipynb") if p.is_file())
        if len(others) == 1:
            notes.append(f"notebook was renamed to {others[0].name}; graded it as {expected.name}")
            expected = others[0]
        elif others:
            raise SubmissionProblem(f"missing notebook {expected.name} (found {', '.join(p.name for p in others)})")
        else:
            raise SubmissionProblem(f"missing notebook {expected.name} (no notebook submitted)")
    if expected.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise SubmissionProblem(f"invalid notebook (larger than {MAX_NOTEBOOK_BYTES // 1024 ** 2} MB)")
    try:
        nb = nbformat.read(str(expected), as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable notebook gets the same status
        raise SubmissionProblem(f"invalid notebook ({type(exc).__name__}: {str(exc).splitlines()[0][:80]})") from None
    if not isinstance(nb.get("cells"), list):
        raise SubmissionProblem("invalid notebook (no cell list)")

    release = notebooks.read(layout.notebook(course, "release", lab))
    nb, repaired = repair_cells(nb, release)
    notes += repaired
    nbformat.write(nb, str(target / f"{lab}.ipynb"))
    timestamp = read_timestamp(original, notes)
    if timestamp is not None:
        (target / "timestamp.txt").write_text(timestamp)
    (target / SECRET_FILE).write_text(read_secret(original, notes))
    return notes, timestamp


def read_secret(folder: Path, notes: list[str]) -> str:
    """The submission's ``submission_secret.txt`` as nbgrader's submit wrote it, else a new
    one. nbgrader names released feedback by a hash of this secret (release_feedback) and a
    student finds it with the copy kept at submit (fetch_feedback); a submission copied by hand
    has none, and release_feedback would stop on it for the whole lab."""
    path = folder / SECRET_FILE
    if path.is_file():
        with open(path, "rb") as f:
            text = f.read(MAX_SECRET_CHARS + 1).decode("ascii", errors="replace")
        if re.fullmatch(r"[0-9a-f]{1,%d}" % MAX_SECRET_CHARS, text):
            return text
        notes.append(f"malformed {SECRET_FILE} replaced (its feedback cannot be fetched through the exchange)")
    return secrets.token_hex(64)  # as nbgrader's submit makes it


def repair_cells(nb, release) -> tuple[object, list[str]]:
    """Compare the submission's nbgrader cells with the release: drop duplicated ones (keep
    the first), and note deleted, re-typed and edited read-only cells (nbgrader restores
    edited/re-typed cells from the gradebook; a deleted test cell scores 0)."""
    notes = []
    released = {notebooks.nbgrader_meta(c)["grade_id"]: c for c in release.cells
                if notebooks.nbgrader_meta(c).get("grade_id")}
    seen, kept, duplicated = set(), [], []
    for cell in nb.cells:
        grade_id = notebooks.nbgrader_meta(cell).get("grade_id")
        if grade_id in released:
            if grade_id in seen:
                duplicated.append(grade_id)
                continue
            seen.add(grade_id)
        kept.append(cell)
    nb.cells = kept
    if duplicated:
        notes.append(f"duplicated cells removed: {', '.join(sorted(set(duplicated)))}")
    deleted = [g for g, c in released.items() if g not in seen and notebooks.nbgrader_meta(c).get("grade")]
    if deleted:
        notes.append(f"graded cells deleted (scored 0): {', '.join(deleted)}")
    by_id = {notebooks.nbgrader_meta(c).get("grade_id"): c for c in nb.cells}
    retyped = [g for g in seen if by_id[g].cell_type != released[g].cell_type]
    if retyped:
        notes.append(f"cell type changed (restored): {', '.join(sorted(retyped))}")
    edited = [g for g in seen if g not in retyped and notebooks.nbgrader_meta(released[g]).get("locked")
              and by_id[g].source.strip() != released[g].source.strip()]
    if edited:
        notes.append(f"read-only cells edited (restored): {', '.join(sorted(edited))}")
    return nb, notes


def scan_outputs(nb_path: Path) -> list[str]:
    """Notes on what happened while executing: cells interrupted by the per-cell timeout,
    allocations refused by the memory limit."""
    notes = []
    try:
        nb = notebooks.read(nb_path)
    except Exception:  # noqa: BLE001
        return notes
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    if any(o.get("ename") == "CellTimeoutError" for o in errors):
        notes.append("a cell hit the per-cell time limit")
    if any(o.get("ename") == "MemoryError" or "allocate memory" in str(o.get("evalue", "")) for o in errors):
        notes.append("an allocation hit the memory limit")
    return notes
