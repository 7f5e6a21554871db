"""The report as self-contained HTML: inline CSS, figures as ``data:`` PNGs, no scripts and no
external resources, so it opens offline from a USB stick or an e-mail attachment. Rendered
with Jinja2 (nbgrader's own template engine) with autoescaping on: failure messages can hold
text a student's code produced."""
from __future__ import annotations

import math

from jinja2 import Environment

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1150px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { margin-bottom: 0.3em; }
.meta { color: #666; } .muted { color: #777; font-size: 0.9em; }
.cards { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.5em 0.9em; min-width: 7.5em; }
.card b { display: block; font-size: 1.35em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.3em 0.55em; text-align: left; vertical-align: top; }
th { background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.hidden { color: #b34700; font-weight: 600; } .visible { color: #555; }
details summary { cursor: pointer; color: #0b5394; }
.note { background: #f7f9fc; border-left: 3px solid #0072B2; padding: 0.5em 0.8em; margin: 0.8em 0; }
img { max-width: 100%; }
code { font-size: 0.95em; }
"""

LAB_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ s.lab }}: class report</title>
<style>{{ style }}</style></head><body>
{% if index %}<p class="muted"><a href="{{ index }}">all labs</a></p>{% endif %}
<h1>{{ s.lab }}: class report</h1>
<p class="meta">Generated {{ generated }}.
{% if s.filters.students %} Students: {{ s.filters.students|join(", ") }}.{% endif %}
{% if s.filters.since %} Submissions on or after {{ s.filters.since }} (UTC).{% endif %}
{% if not s.has_gradebook %} No gradebook found: scores come from the grading ledger.{% endif %}</p>
{% if s.unknown_students %}<p class="note">Not in this lab's gradebook, ledger or submissions:
{{ s.unknown_students|join(", ") }}.</p>{% endif %}
<p class="note">Failure reasons are the messages the tests raised. Hidden-test code is never shown here; a failure
"in the hidden tests" means every visible check of that exercise had passed.</p>

<div class="cards">
<div class="card"><b>{{ s.submitted }} / {{ s.roster }}</b>submitted ({{ s.completion|pct }})</div>
<div class="card"><b>{{ s.graded }}</b>graded</div>
<div class="card"><b>{{ s.failed }}</b>failed to grade</div>
<div class="card"><b>{{ s.needs_review }}</b>need review</div>
<div class="card"><b>{{ s.awaiting }}</b>awaiting grading</div>
<div class="card"><b>{{ s.late }}</b>late{% if s.median_hours_late is not none %} (median {{ s.median_hours_late|num(1) }} h){% endif %}</div>
<div class="card"><b>{{ s.mean_score|num(2) }} / {{ s.max_score|num }}</b>mean score (median {{ s.median_score|num(2) }})</div>
<div class="card"><b>{{ s.full_marks }}</b>full marks</div>
</div>
<p class="muted">Roster: students in the gradebook plus anyone who submitted this lab.
Late: submitted after the due date{% if s.duedate %} ({{ s.duedate }}){% else %} (none is set in the gradebook){% endif %},
extensions included (nbgrader's <code>total_seconds_late</code>).</p>

<h2>Scores</h2>
{% if img.scores %}<img alt="score histogram" src="data:image/png;base64,{{ img.scores }}">{% else %}<p>No graded submissions.</p>{% endif %}
{% if img.late %}<img alt="hours late" src="data:image/png;base64,{{ img.late }}">{% endif %}

<h2>Submissions that need attention</h2>
{% if flagged %}
<table><tr><th>student</th><th>status</th><th>reason / review findings</th><th>notes</th></tr>
{% for r in flagged %}<tr><td>{{ r.student }}</td><td>{{ r.status }}</td><td>{{ r.why }}</td><td>{{ r.notes }}</td></tr>
{% endfor %}</table>
{% if flagged_more %}<p class="muted">{{ flagged_more }} more in {{ files.students }}.</p>{% endif %}
{% else %}<p>No submission failed to grade or needs review.</p>{% endif %}
{% if missing %}<details><summary>{{ missing|length }} student(s) without a graded submission in this selection</summary>
<p>{% for r in missing %}{{ r.student }} ({{ r.status }}){% if not loop.last %}, {% endif %}{% endfor %}</p></details>{% endif %}

<h2>Exercises</h2>
{% if img.outcomes %}<img alt="exercise outcomes" src="data:image/png;base64,{{ img.outcomes }}">{% endif %}
<table><tr><th>exercise</th><th>points</th><th>graded</th><th>full</th><th>partial</th><th>zero</th>
<th>lost at a visible check</th><th>lost only to hidden tests</th><th>lost, no error to locate</th>
<th>difficulty</th><th>discrimination</th><th></th></tr>
{% for e in exercises %}<tr><td>{{ e.exercise }}{% if e.title %} — {{ e.title }}{% endif %}</td><td class="n">{{ e.points|num }}</td>
<td class="n">{{ e.graded }}</td><td class="n">{{ e.full_share|pct }}</td><td class="n">{{ e.partial_share|pct }}</td>
<td class="n">{{ e.zero_share|pct }}</td><td class="n">{{ e.lost_at_visible_check }}</td>
<td class="n{% if e.lost_only_to_hidden_tests %} hidden{% endif %}">{{ e.lost_only_to_hidden_tests }}</td>
<td class="n">{{ e.lost_other }}</td><td class="n">{{ e.difficulty|num(2) }}</td><td class="n">{{ e.discrimination|num(2) }}</td>
<td class="muted">{{ e.item_verdict }}</td></tr>
{% endfor %}</table>
<p class="muted">A student who loses points "only to hidden tests" passed every visible check of the exercise:
many such students suggest the visible checks miss a common mistake (or the hidden threshold is strict).</p>

<h3>Item analysis</h3>
<p>{{ difficulty_text }}</p>
<p>{{ discrimination_text }}</p>
{% if img.item_map %}<img alt="item analysis" src="data:image/png;base64,{{ img.item_map }}">{% endif %}

<h2>Most frequent failure reasons</h2>
<p class="muted">Messages that differ only in numbers, quoted values, shapes or paths are counted together
(shown with "…" where they differ); failures raised by different lines of a test are kept apart.</p>
{% for block in reasons %}
<h3>{{ block.name }}</h3>
{% if block.rows %}
<table><tr><th>students</th><th>where</th><th>error</th><th>reason</th><th>example</th></tr>
{% for r in block.rows %}<tr><td class="n">{{ r.students }}{% if r.share_of_losses is not none %} <span class="muted">({{ r.share_of_losses|pct }})</span>{% endif %}</td>
<td class="{{ r.where }}">{% if r.where == "unknown" %}—{% else %}{{ r.where }}{% if r.line %}, line {{ r.line }}{% endif %}{% endif %}</td>
<td>{{ r.error }}</td>
<td>{{ r.reason }}{% if r.distinct_messages > 1 %}<details><summary>{{ r.distinct_messages }} variants; example</summary>{{ r.example_message }}</details>{% endif %}</td>
<td>{% if r.feedback %}<a href="{{ r.feedback }}">{{ r.example_student }}</a>{% else %}{{ r.example_student }}{% endif %}</td></tr>
{% endfor %}</table>
{% if block.more %}<p class="muted">{{ block.more }} more reason(s) in {{ files.reasons }}.</p>{% endif %}
{% else %}<p class="muted">Nobody lost points here.</p>{% endif %}
{% endfor %}

<h2>Grading time</h2>
<p>{{ metric_note }}</p>
{% if img.time %}<img alt="grading time" src="data:image/png;base64,{{ img.time }}">{% else %}<p class="muted">No grading times recorded.</p>{% endif %}

<h2>Data</h2>
<p>Beside this file: {% for f in files.values() %}<code>{{ f }}</code>{% if not loop.last %}, {% endif %}{% endfor %}.</p>
</body></html>
"""

INDEX_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Class report</title><style>{{ style }}</style></head><body>
<h1>Class report</h1>
<p class="meta">Generated {{ generated }}.
{% if filters.students %} Students: {{ filters.students|join(", ") }}.{% endif %}
{% if filters.since %} Submissions on or after {{ filters.since }} (UTC).{% endif %}</p>
{% if img %}<img alt="labs overview" src="data:image/png;base64,{{ img }}">{% endif %}
<table><tr><th>lab</th><th>submitted</th><th>graded</th><th>failed</th><th>need review</th><th>late</th>
<th>mean score</th><th>full marks</th></tr>
{% for s in summaries %}<tr><td><a href="{{ s.lab }}.html">{{ s.lab }}</a></td>
<td class="n">{{ s.submitted }} / {{ s.roster }} ({{ s.completion|pct }})</td><td class="n">{{ s.graded }}</td>
<td class="n">{{ s.failed }}</td><td class="n">{{ s.needs_review }}</td><td class="n">{{ s.late }}</td>
<td class="n">{{ s.mean_score|num(2) }} / {{ s.max_score|num }}</td><td class="n">{{ s.full_marks }}</td></tr>
{% endfor %}</table>
{% if skipped %}<p class="muted">No submissions yet: {{ skipped|join(", ") }}.</p>{% endif %}
<p>Beside this file: <code>labs.csv</code>, and per lab an HTML page with its CSV and JSON files.</p>
</body></html>
"""


def _pct(value) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.0f}%"


def _num(value, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if digits == 0:
        return f"{value:g}"
    return f"{value:.{digits}f}"


def environment() -> Environment:
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    return env


def render_lab(**context) -> str:
    return environment().from_string(LAB_PAGE).render(style=STYLE, **context)


def render_index(**context) -> str:
    return environment().from_string(INDEX_PAGE).render(style=STYLE, **context)
