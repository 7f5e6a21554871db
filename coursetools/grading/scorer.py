"""How a graded test cell earns its points: from what the trusted side observed.

nbgrader's own rule reads the cell's outputs, which the kernel controls: the first
``execute_result`` gives partial credit (non-numeric text: full marks) and any stderr text
fails the cell (a harmless warning costs the student the points). Here a test cell scores
full marks only when the trusted executor saw it run, its execute reply was ``ok``, its
nonce acknowledgement came back and no error output was recorded; otherwise zero. Warnings
stay in the output and cost nothing. Partial credit from ``execute_result`` is off unless a
lab opts in (``TrustedScores.partial_credit``). The observations, including what the guard
had to restore, are also written to ``$COURSE_VERDICT_FILE`` for the worker.
"""
from __future__ import annotations

import json
import os

from traitlets import Bool

from nbgrader import utils
from nbgrader.preprocessors import SaveAutoGrades

from coursetools.grading.executor import is_test_cell

VERDICT_ENV = "COURSE_VERDICT_FILE"


def passed(cell, observed: dict | None) -> bool:
    """Did this graded test cell pass, judged from the trusted observations?"""
    if not observed or observed.get("status") != "ok" or not observed.get("ack"):
        return False
    return not any(o.get("output_type") == "error" for o in cell.get("outputs", []))


class TrustedScores(SaveAutoGrades):
    partial_credit = Bool(False, help="Let a numeric execute_result give partial credit "
                                      "(nbgrader's rule) in cells that passed.").tag(config=True)

    def preprocess(self, nb, resources):
        self._trusted = resources.get("course_trusted") or {"cells": {}, "tamper": [], "truncated_bytes": 0}
        self._scores = {}
        nb, resources = super().preprocess(nb, resources)
        path = os.environ.get(VERDICT_ENV)
        if path:
            cells = {k: {"passed": self._scores.get(k), "status": v.get("status"), "ack": v.get("ack")}
                     for k, v in self._trusted["cells"].items()}
            with open(path, "w") as f:
                json.dump({"cells": cells, "tamper": self._trusted["tamper"],
                           "truncated_bytes": self._trusted["truncated_bytes"]}, f)
        return nb, resources

    def _add_score(self, cell, resources):
        if not is_test_cell(cell):
            return super()._add_score(cell, resources)
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        grade = self.gradebook.find_grade(grade_id, self.notebook_id, self.assignment_id, self.student_id)
        max_points = float(cell.metadata["nbgrader"]["points"])
        ok = passed(cell, self._trusted["cells"].get(grade_id))
        score = max_points if ok else 0.0
        if ok and self.partial_credit:
            for output in cell.outputs:
                if output.output_type == "execute_result":
                    score = utils.get_partial_grade(output, max_points, self.log)
                    break
        self._scores[grade_id] = ok
        grade.auto_score = score
        grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()
