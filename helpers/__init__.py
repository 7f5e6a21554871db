"""Student-facing helpers for the PyTorch classification course.

Import what a lab needs, e.g. ``from helpers import accuracy_fn, plot_decision_boundary``.
The ``helpers.checks`` module holds the assertions the labs' test cells use;
``helpers.progress.tqdm`` is tqdm.auto's progress bar, saved as text. Imported in a notebook,
the package also names unanswered exercises in errors (``helpers.exercises``).
"""
from helpers import exercises as _exercises
from helpers.metrics import accuracy_fn
from helpers.plotting import plot_decision_boundary, plot_image_grid, plot_loss_curves, plot_predictions
from helpers.reproducibility import get_device, set_seed

__all__ = [
    "accuracy_fn",
    "get_device",
    "plot_decision_boundary",
    "plot_image_grid",
    "plot_loss_curves",
    "plot_predictions",
    "set_seed",
]

_exercises.install()
