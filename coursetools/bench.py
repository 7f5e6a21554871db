"""``course bench``: run each lab's reference solution top-to-bottom, as a student's kernel
would, and report wall time against the lab's budget and the key metric against its hidden
threshold (both declared in ``benchmarks.toml`` beside this module)."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from coursetools import layout, notebooks, table

SPECS = Path(__file__).with_name("benchmarks.toml")
MARKER = "__COURSE_BENCH__"


@dataclass
class BenchResult:
    lab: str
    seconds: float
    budget_seconds: float | None
    metric: str
    value: float | None
    threshold: float | None
    higher_is_better: bool
    error: str = ""
    lower_bound: float | None = None  # a two-sided band: lower_bound <= value <= threshold

    @property
    def within_budget(self) -> bool:
        return self.budget_seconds is None or self.seconds <= self.budget_seconds

    @property
    def meets_threshold(self) -> bool:
        if self.value is None or self.threshold is None:
            return self.threshold is None and not self.error
        if self.lower_bound is not None and self.value < self.lower_bound:
            return False
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    @property
    def ok(self) -> bool:
        return not self.error and self.within_budget and self.meets_threshold


def load_specs() -> dict[str, dict]:
    return tomllib.loads(SPECS.read_text())


def missing_data(lab: str) -> str | None:
    """The dataset ``lab`` needs (``needs_data`` in benchmarks.toml) when this machine lacks it,
    else None."""
    need = load_specs().get(lab, {}).get("needs_data")
    if need == "cifar10":
        from helpers.data import cifar10_available

        return None if cifar10_available() else "CIFAR-10"
    if need:
        raise ValueError(f"{lab}: unknown needs_data {need!r} in benchmarks.toml")
    return None


def run_lab(course: Path, lab: str, spec: dict, timeout: int = 1200) -> BenchResult:
    """Execute ``source/<lab>`` in a scratch copy of its folder; evaluate the metric after."""
    nb = notebooks.read(layout.notebook(course, "source", lab))
    expression = spec.get("expression")
    if expression:
        nb.cells.append(nbformat.v4.new_code_cell(
            f"import json as _json\nprint({MARKER!r} + _json.dumps(float({expression})))"))
    result = BenchResult(lab, 0.0, spec.get("budget_seconds"), spec.get("metric", ""), None,
                         spec.get("threshold"), spec.get("higher_is_better", True),
                         lower_bound=spec.get("lower_bound"))
    with tempfile.TemporaryDirectory(prefix=f"bench-{lab}-") as tmp:
        workdir = Path(tmp) / lab
        shutil.copytree(course / "source" / lab, workdir,
                        ignore=shutil.ignore_patterns("models", "data", ".ipynb_checkpoints"))
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", config=notebooks.kernel_config(),
                                resources={"metadata": {"path": str(workdir)}})
        start = time.perf_counter()
        try:
            client.execute()
        except Exception as exc:  # noqa: BLE001 - report, do not stop the other labs
            result.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        result.seconds = round(time.perf_counter() - start, 1)
    if expression and not result.error:
        for output in nb.cells[-1].get("outputs", []):
            text = output.get("text", "")
            if MARKER in text:
                result.value = round(json.loads(text.split(MARKER, 1)[1].strip()), 4)
    return result


def format_table(results: list[BenchResult]) -> str:
    header = ["lab", "seconds", "budget", "metric", "value", "threshold", "status"]
    rows = []
    for r in results:
        status = "ok" if r.ok else (r.error or ", ".join(
            p for p, bad in (("over budget", not r.within_budget), ("below threshold", not r.meets_threshold)) if bad))
        rows.append([r.lab, f"{r.seconds:.1f}", f"{r.budget_seconds:g}" if r.budget_seconds else "-",
                     r.metric, "-" if r.value is None else f"{r.value:g}",
                     _threshold_text(r),
                     status])
    return table.format_table(header, rows)


def _threshold_text(r: BenchResult) -> str:
    if r.threshold is None:
        return "-"
    if r.lower_bound is not None:
        return f"{r.lower_bound:g}..{r.threshold:g}"
    return f"{'>=' if r.higher_is_better else '<='} {r.threshold:g}"


def to_json(results: list[BenchResult]) -> str:
    return json.dumps([asdict(r) | {"ok": r.ok} for r in results], indent=2)
