"""The report's figures, as base64 PNG strings to embed in the HTML (``data:`` URIs), so the
report is one file that opens offline. Figures are built with matplotlib's object API (no
pyplot state, no display needed) and fixed margins (automatic layout engines lay the text out
again and doubled the drawing time). Colours: the Okabe-Ito palette, readable with
colour-blindness."""
from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

GREEN, YELLOW, ORANGE, VERMILLION, GREY, BLUE, SKY = ("#009E73", "#F0E442", "#E69F00", "#D55E00", "#999999",
                                                       "#0072B2", "#56B4E9")


def _figure(width: float, height: float, left: float = 0.75, right: float = 0.2, bottom: float = 0.55,
            top: float = 0.35, wspace: float = 0.2) -> Figure:
    """A figure whose margins are given in inches (so they suit every figure size)."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wspace)
    return fig


def to_png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def score_histogram(scores: pd.Series, max_score: float) -> str:
    """Total scores of the graded submissions, one bar per point when the lab has few points."""
    fig = _figure(6.5, 3.2)
    ax = fig.subplots()
    values = scores.dropna().to_numpy()
    if max_score and max_score <= 40 and np.allclose(values, np.round(values)):
        bins = np.arange(-0.5, max_score + 1.5, 1.0)
    else:
        bins = np.linspace(0, max(max_score, values.max() if len(values) else 1), 21)
    ax.hist(values, bins=bins, color=BLUE, edgecolor="white")
    ax.set_xlabel(f"score (of {max_score:g})")
    ax.set_ylabel("students")
    ax.set_title("Score distribution (graded submissions)")
    _integer_ticks(ax)
    return to_png(fig)


def exercise_outcomes(table: pd.DataFrame) -> str:
    """Left: share with full marks / partial / zero per exercise. Right: of the students who
    lost points, where the test stopped them."""
    labels = [str(label).replace("Exercise ", "Ex ") for label in table["exercise"]][::-1]
    y = np.arange(len(labels))
    longest = max((len(label) for label in labels), default=4)
    fig = _figure(9.5, 0.4 * len(labels) + 1.3, left=0.25 + 0.075 * longest, top=0.5, wspace=0.08)
    left, right = fig.subplots(1, 2, sharey=True)
    n = table["graded"].replace(0, np.nan).to_numpy()[::-1]
    start = np.zeros(len(labels))
    for column, colour, name in (("full", GREEN, "full marks"), ("partial", YELLOW, "partial"), ("zero", VERMILLION, "zero")):
        share = np.nan_to_num(table[column].to_numpy()[::-1] / n)
        left.barh(y, share, left=start, color=colour, label=name)
        start += share
    left.set_xlim(0, 1)
    left.set_xlabel("share of graded students")
    left.set_yticks(y, labels)
    left.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize=8)
    lost = table[["lost_at_visible_check", "lost_only_to_hidden_tests", "lost_other"]].sum(axis=1).replace(0, np.nan)
    lost = lost.to_numpy()[::-1]
    start = np.zeros(len(labels))
    for column, colour, name in (("lost_at_visible_check", ORANGE, "a visible check"),
                                 ("lost_only_to_hidden_tests", VERMILLION, "only hidden tests"),
                                 ("lost_other", GREY, "no error to locate")):
        share = np.nan_to_num(table[column].to_numpy()[::-1] / lost)
        right.barh(y, share, left=start, color=colour, label=name)
        start += share
    right.set_xlim(0, 1)
    right.set_xlabel("share of the students who lost points")
    right.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize=8)
    return to_png(fig)


def item_map(table: pd.DataFrame) -> str:
    """Difficulty against discrimination, one labelled point per exercise."""
    fig = _figure(6.5, 4, left=0.8)
    ax = fig.subplots()
    ax.axhspan(0.3, 1.0, color=GREEN, alpha=0.08)
    ax.axhline(0, color=GREY, linewidth=0.8)
    ax.axhline(0.3, color=GREEN, linewidth=0.8, linestyle="--")
    shown = table.dropna(subset=["difficulty", "discrimination"])
    ax.scatter(shown["difficulty"], shown["discrimination"], color=BLUE, zorder=3)
    for _, row in shown.iterrows():
        ax.annotate(str(row["exercise"]).replace("Exercise ", "Ex "), (row["difficulty"], row["discrimination"]),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(min(-0.2, float(shown["discrimination"].min()) - 0.1 if len(shown) else -0.2), 1.0)
    ax.set_xlabel("difficulty p (share of the points earned: 1 = everyone passed)")
    ax.set_ylabel("discrimination (item-rest correlation)")
    ax.set_title("Item analysis (shaded: discrimination >= 0.3)")
    return to_png(fig)


def histogram(values: pd.Series, xlabel: str, title: str, colour: str = SKY) -> str:
    """A plain histogram (grading time, hours late)."""
    fig = _figure(6.5, 3)
    ax = fig.subplots()
    data = pd.to_numeric(values, errors="coerce").dropna().to_numpy()
    ax.hist(data, bins=min(30, max(5, int(np.sqrt(len(data))) + 1)), color=colour, edgecolor="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("students")
    ax.set_title(title)
    _integer_ticks(ax)
    return to_png(fig)


def labs_overview(summaries: list[dict], score_fractions: dict[str, pd.Series]) -> str:
    """Completion and score spread of every lab, for the index page."""
    labs = [s["lab"] for s in summaries]
    fig = _figure(10, 3.6, wspace=0.25)
    left, right = fig.subplots(1, 2)
    left.bar(range(len(labs)), [s["completion"] or 0 for s in summaries], color=BLUE)
    left.set_xticks(range(len(labs)), [lab[:5] for lab in labs])
    left.set_ylim(0, 1)
    left.set_ylabel("submitted / roster")
    left.set_title("Completion")
    data = [score_fractions.get(lab, pd.Series(dtype=float)).dropna().to_numpy() for lab in labs]
    right.boxplot([d if len(d) else [np.nan] for d in data])
    right.set_xticks(range(1, len(labs) + 1), [lab[:5] for lab in labs])
    right.set_ylim(-0.05, 1.05)
    right.set_ylabel("score / max")
    right.set_title("Scores of graded submissions")
    return to_png(fig)


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
