"""Answer-cell stubs that name their exercise (``nbgrader generate_assignment``, via
``nbgrader_config.py``).

nbgrader's ClearSolutions puts the configured ``code_stub`` in every answer cell. This one
turns its ``raise NotImplementedError()`` into
``raise NotImplementedError("Exercise 2 — The model: not answered yet")``, so the error a
student sees (and the note ``helpers`` adds to the failing test cell after it, which
nbgrader's Validate report shows) says which exercise is missing.
"""
from __future__ import annotations

import json

from nbgrader.preprocessors import ClearSolutions

from coursetools import notebooks
from helpers.exercises import stub_message

BARE = "raise NotImplementedError()"


def exercise_stub(stub: str, exercise: str) -> str:
    """``stub`` with its bare ``raise NotImplementedError()`` naming ``exercise``."""
    message = json.dumps(stub_message(exercise), ensure_ascii=False)  # also a Python string literal
    return stub.replace(BARE, f"raise NotImplementedError({message})")


class ExerciseStubs(ClearSolutions):
    """ClearSolutions whose Python stub names the exercise of each answer cell (the nearest
    "## Exercise N — title" heading above it); cells without a heading keep ``code_stub``."""

    def preprocess(self, nb, resources):
        self._names = {grade_id: notebooks.exercise_name(*heading)
                       for grade_id, heading in notebooks.exercise_headings(nb.cells).items()}
        self._default_stub = dict(self.code_stub)
        try:
            return super().preprocess(nb, resources)
        finally:
            self.code_stub = self._default_stub

    def preprocess_cell(self, cell, resources, cell_index):
        name = self._names.get(notebooks.nbgrader_meta(cell).get("grade_id"))
        stubs = dict(self._default_stub)
        if name and "python" in stubs:
            stubs["python"] = exercise_stub(stubs["python"], name)
        self.code_stub = stubs
        return super().preprocess_cell(cell, resources, cell_index)
