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

