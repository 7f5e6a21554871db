"""Classical item analysis of a lab's exercises: difficulty and discrimination.

Each graded test cell is an *item*. Two numbers per item, as test designers compute them:

- **difficulty** p: the proportion of the maximum the class earned on the item; for
  all-or-nothing cells (every test cell of this course) that is the share of students with
  full marks. Despite the name, a high p means an easy item.
- **discrimination**: the point-biserial correlation between the item's score and the *rest
  score* (the lab total minus this item), i.e. the Pearson correlation of a pass/fail column
  with a number. Leaving the item out of the total keeps it from correlating with itself,
  which would inflate the value for labs with few items.

Rules of thumb (Ebel and Frisbie): discrimination >= 0.4 very good, 0.3-0.4 good, 0.2-0.3
acceptable, below 0.2 poor; a negative value means stronger students fail the item more often
than weaker ones, which usually points at the test rather than the students.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DIFFICULTY_TEXT = ("Difficulty (p): the share of the points the class earned on the exercise; for all-or-nothing "
                   "tests, the share of students with full marks. Near 1 is easy, near 0 hard.")
DISCRIMINATION_TEXT = ("Discrimination: how strongly getting this exercise right goes with doing well on the rest "
                       "of the lab (correlation, -1 to 1). Above 0.3 it tells students who master the lab from "
                       "those who do not; near 0 it does not; negative means stronger students fail it more "
                       "often: check the test.")


def item_analysis(scores: pd.DataFrame, points: dict[str, float]) -> pd.DataFrame:
    """Difficulty and discrimination per item. ``scores``: one row per graded submission, one
    column per item (points earned); ``points``: each item's maximum. Items nobody or
    everybody passed, or classes smaller than 3, get NaN discrimination (no variation)."""
    rows = {}
    complete = scores.dropna(how="any")
    total = complete.sum(axis=1)
    for item in scores.columns:
        maximum = points.get(item) or np.nan
        column = complete[item]
        p = float(column.mean() / maximum) if len(column) and maximum else np.nan
        rows[item] = {"n": int(len(column)), "difficulty": p,
                      "discrimination": point_biserial(column, total - column)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["n", "difficulty", "discrimination"])


def point_biserial(item: pd.Series, rest: pd.Series) -> float:
    """Correlation of an item's scores with the rest scores (point-biserial for 0/1 items);
    NaN when either has no variation or there are fewer than 3 students."""
    x, y = np.asarray(item, dtype=float), np.asarray(rest, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    # Pearson's r, which for a 0/1 item is the point-biserial coefficient (the tests check it
    # against scipy.stats.pointbiserialr); numpy alone spares the report scipy's import time.
    return float(np.corrcoef(x, y)[0, 1])


def verdict(difficulty: float, discrimination: float) -> str:
    """A few words on what an instructor might do about an item."""
    if np.isnan(difficulty):
        return ""
    if np.isnan(discrimination):
        if difficulty >= 1:
            return "everyone passed: tells students apart not at all"
        if difficulty <= 0:
            return "nobody passed: check the exercise and its tests"
        return "too few students to judge"
    if discrimination < -0.1:
        return "negative: stronger students fail it more often; check the test"
    if discrimination < 0.2:
        return "weak: unrelated to the rest of the lab"
    if discrimination < 0.3:
        return "acceptable"
    return "good" if discrimination < 0.4 else "very good"
