"""Shared fixtures. Plots render off-screen; the course root is this checkout."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import pytest  # noqa: E402

from coursetools import layout  # noqa: E402

ROOT = layout.REPO_ROOT
LABS = layout.labs(ROOT)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")



def make_grading_course(path, lab: str):
    """A scratch course holding ``lab`` (generated), for grading tests: (course, release, source)."""
    from coursetools import build, nbgrader_ops, notebooks

    build.scratch_course(ROOT, path)
    nbgrader_ops.run(path, "generate_assignment", lab, "--force")
    release = notebooks.read(layout.notebook(path, "release", lab))
    source = notebooks.read(layout.notebook(path, "source", lab))
    return path, release, source


def gradebook_snapshot(course, lab: str) -> dict:
    """Per student: (score, max score, sorted per-cell scores) as the gradebook holds them."""
    from coursetools import nbgrader_ops

    return {r.student: (r.score, r.max_score, tuple(sorted(r.cells.items())))
            for r in nbgrader_ops.scores(course, lab)}


def wait_for(predicate, seconds: float = 300):
    """Poll ``predicate`` until it returns something truthy (returned) or ``seconds`` pass (None)."""
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    return None


def skip_if_data_missing(lab: str) -> None:
    """Labs that read a dataset from the course data directory (benchmarks.toml `needs_data`)
    are skipped, with the reason, where that dataset is absent. CI always has it."""
    from coursetools import bench

    try:
        missing = bench.missing_data(lab)
    except ValueError as problem:
        pytest.fail(str(problem))
    if missing:
        pytest.skip(f"{lab} needs {missing}: set COURSE_DATA_DIR (see README)")


def pytest_collection_modifyitems(config, items):
    """Longest first: the per-lab fidelity runs dominate the suite, and with two xdist workers a
    heavy lab that starts last leaves one core idle while it finishes. Estimated cost = the
    lab's time budget x its number of graded submissions. Deterministic, so every worker
    collects the same order."""
    from coursetools import bench, fidelity

    specs = bench.load_specs()

    def cost(item) -> float:
        if item.originalname != "test_lab_grader_fidelity":
            return 0.0
        lab = item.callspec.params["lab"]
        return specs.get(lab, {}).get("budget_seconds", 60) * len(fidelity.load_cases(lab, tiers=("core",)))

    order = {id(item): position for position, item in enumerate(items)}
    items.sort(key=lambda item: (-cost(item), order[id(item)]))



def pytest_configure(config):
    """`--dist loadgroup` must keep an ``xdist_group`` on one worker: the heavy module fixtures
    (the attack batch, the grading and cluster courses) are built once, and two copies of one
    batch grading the same students side by side would see each other's processes. xdist groups
    an item by setting ``item._nodeid`` to ``id@group``; pytest 9.2 no longer reads that
    attribute, and grouping silently stops (every group runs on both workers). Refuse to run so."""
    if hasattr(config, "workerinput") or getattr(config.option, "dist", "no") != "loadgroup":
        return
    if "_nodeid" not in pytest.Item.nodeid.fget.__code__.co_names:
        raise pytest.UsageError(
            f"pytest {pytest.__version__} ignores pytest-xdist's xdist_group (--dist loadgroup): every "
            "grouped test module would run on both workers. Install the pytest pyproject.toml pins.")
