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
