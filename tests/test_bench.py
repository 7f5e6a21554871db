"""`course bench` bookkeeping: thresholds (one- and two-sided), budgets and the registry."""
import pytest

from coursetools import bench, layout
from coursetools.bench import BenchResult
from conftest import LABS


def result(value, threshold=90.0, higher=True, lower=None, seconds=10.0, budget=30.0, error=""):
    return BenchResult("lab", seconds, budget, "acc", value, threshold, higher, error, lower)


def test_one_sided_thresholds_and_budget():
    assert result(95).ok and not result(85).ok
    assert result(0.005, threshold=0.01, higher=False).ok and not result(0.02, threshold=0.01, higher=False).ok
    assert not result(95, seconds=31).ok
    assert not result(None).ok and not result(95, error="boom").ok


def test_two_sided_band():
    assert result(50, threshold=70, higher=False, lower=30).ok
    assert not result(25, threshold=70, higher=False, lower=30).ok
    assert not result(75, threshold=70, higher=False, lower=30).ok
    assert "30..70" in bench.format_table([result(50, threshold=70, higher=False, lower=30)])


@pytest.mark.parametrize("lab", LABS)
def test_every_lab_has_a_complete_benchmark_entry(lab):
    spec = bench.load_specs().get(lab)
    assert spec, f"{lab} has no entry in coursetools/benchmarks.toml"
    for key in ("metric", "expression", "threshold", "higher_is_better", "budget_seconds", "measured"):
        assert key in spec, f"{lab}: benchmarks.toml lacks {key!r}"
    assert spec["budget_seconds"] <= 180
    assert set(bench.load_specs()) <= set(layout.labs(layout.REPO_ROOT)), "entry for a lab that does not exist"


def test_kernels_started_for_benchmarks_print_no_transport_warning(capfd):
    """ipykernel >= 7.3 prints "Kernel is running over TCP without encryption" on the kernel's
    stderr unless the kernel manager provisions CurveZMQ keys. `course bench` and the grading
    benchmark start kernels with `notebooks.kernel_config()` (as nbgrader_config.py does for
    nbgrader) so their output stays readable."""
    import nbformat
    from nbclient import NotebookClient

    from coursetools import notebooks

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    NotebookClient(nb, timeout=60, kernel_name="python3", config=notebooks.kernel_config()).execute()
    assert nb.cells[0].outputs[0]["text"] == "42\n"
    assert "without encryption" not in capfd.readouterr().err


def test_nbgrader_config_asks_for_the_same_kernel_transport():
    from traitlets.config import Config, PyFileConfigLoader

    from coursetools import notebooks

    config = PyFileConfigLoader("nbgrader_config.py", path=str(layout.REPO_ROOT)).load_config()
    expected = notebooks.kernel_config()
    assert config.KernelManager == expected.KernelManager, (config.KernelManager, expected.KernelManager)
    assert isinstance(config, Config)
