"""nbgrader configuration for the course. The repository root is the course directory.

Every nbgrader command (generate_assignment, generate_solution, autograde, generate_feedback,
export, validate, and the exchange's release/collect/release_feedback) works from the repository
root with no extra flags. This file is also read where students run nbgrader (Validate), so it
imports nothing from this repository (coursetools is instructor tooling).

Gradebook: SQLite (``gradebook.db`` at the course root) unless the environment variable
``COURSE_DB_URL`` names another database. A department running PostgreSQL sets, for example::

    export COURSE_DB_URL=postgresql://grader:secret@db.example.edu:5432/pytorch_course

(the grading environment needs the ``psycopg`` driver: ``pip install "psycopg[binary]"``).
"""
import os

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "pytorch-classification"

# Generated folders: release/ for students, solutions/ for instructors and TAs.
c.CourseDirectory.solution_directory = "solutions"

# Files labs write when an instructor runs a source notebook in place must not leak into release/.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "models", "data"]

if os.environ.get("COURSE_DB_URL"):
    c.CourseDirectory.db_url = os.environ["COURSE_DB_URL"]

# The exchange (release_assignment, fetch_assignment, submit, collect, release_feedback,
# fetch_feedback): a folder the instructor and every student can write. COURSE_EXCHANGE names
# it (on a JupyterHub, a volume every server mounts); otherwise EXCHANGE_DEFAULT, which suits one
# account trying the workflow and which you may change for your site. nbgrader's own default,
# /usr/local/share/nbgrader/exchange, only root can create. `course student-kit` gives students
# the same setting.
EXCHANGE_DEFAULT = "~/.local/share/nbgrader/exchange"
c.Exchange.root = os.path.expanduser(os.environ.get("COURSE_EXCHANGE") or EXCHANGE_DEFAULT)

# Execution limits (autograde, validate). nbgrader's default is 30 s per cell, too short for
# the CIFAR-10 training cells of labs 08-09 (about 150 s on 2 CPU cores). 600 s per cell leaves
# a 4x margin for slow grading machines and is the hard ceiling: a cell that runs longer (a
# student's endless loop) is interrupted and its notebook graded with that cell failed.
c.Execute.timeout = 600
c.Execute.interrupt_on_timeout = True
c.Execute.startup_timeout = 120

# Preprocessors are named by dotted path, not imported: the file stays importable without
# coursetools and the configuration stays serializable (Formgrader logs it).
NB = "nbgrader.preprocessors."

# What students see in place of a solution region. ExerciseStubs (nbgrader's ClearSolutions)
# makes the stub name its exercise: raise NotImplementedError("Exercise 2 — …: not answered yet").
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.GenerateAssignment.preprocessors = [
    NB + "IncludeHeaderFooter", NB + "InstantiateTests", NB + "LockCells",
    "coursetools.stubs.ExerciseStubs",
    NB + "ClearOutput", NB + "CheckCellMetadata", NB + "ComputeChecksums", NB + "SaveCells",
    NB + "ClearHiddenTests", NB + "ClearMarkScheme", NB + "ComputeChecksums", NB + "CheckCellMetadata",
]  # nbgrader 0.9's list, ClearSolutions replaced

# Solutions hold the reference code but no hidden tests, and are generated without executing
# (outputs would make the committed copy differ on every regeneration).
c.GenerateSolution.preprocessors = [
    NB + "IncludeHeaderFooter", NB + "LockCells", NB + "ClearOutput", NB + "ClearHiddenTests", NB + "ClearMarkScheme",
]

# Autograding runs student code: grade with `course grade LAB` (sandboxed, under limits).
# Plain `nbgrader autograde`, and Formgrader's autograde button that runs it, refuse and name
# that command (coursetools/grading/plain_autograde.py): they would run the code unsandboxed
# with your rights. COURSE_PLAIN_AUTOGRADE=1 lets them run on a notebook you trust.
if not os.environ.get("COURSE_PLAIN_AUTOGRADE"):
    c.Autograde.exporter_class = "coursetools.grading.plain_autograde.RefusePlainAutograde"

# Feedback for students (coursetools/feedback.py): exercise titles, the failure message first,
# hidden-test code removed from cells and tracebacks (messages kept; to show students the
# hidden tests set c.StudentFeedback.hide_hidden_tests = False), math as MathML (no CDN).
c.GenerateFeedback.preprocessors = [
    NB + "GetGrades", "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor", "coursetools.feedback.StudentFeedback",
]
c.GenerateFeedback.exporter_class = "coursetools.feedback.FeedbackExporter"

# Formgrader's manual-grading page: the same MathML math instead of MathJax from a CDN (raw TeX
# offline). Its HTMLExporter is nbgrader's own, so the template and the markdown filter are set
# here, where coursetools is installed (find_spec imports nothing; students' Validate skips it).
from importlib.util import find_spec  # noqa: E402

_coursetools, _nbgrader = find_spec("coursetools"), find_spec("nbgrader")
if _coursetools is not None and _nbgrader is not None:
    c.HTMLExporter.template_name = "course_formgrade"
    c.HTMLExporter.extra_template_basedirs = [
        os.path.join(os.path.dirname(_coursetools.origin), "feedback_templates"),
        os.path.join(os.path.dirname(_nbgrader.origin), "server_extensions", "formgrader", "templates"),
    ]
    c.HTMLExporter.filters = {"markdown2html": "coursetools.feedback.markdown2mathml"}

# Grades export: CSV at the course root, with each submission's grading status (graded, needs
# review, failed), written only when the gradebook still matches the grading ledger (see
# coursetools/grading/export.py; instructor tooling, never loaded by students' Validate).
c.ExportApp.plugin_class = "coursetools.grading.export.CourseCsvExport"
c.CsvExportPlugin.to = "grades.csv"

# Kernels run on the grading machine itself. ipykernel >= 7.3 warns on every start that its TCP
# sockets are unencrypted unless the kernel manager provisions CurveZMQ keys; "auto" does that
# when the kernel supports it (older jupyter_client has no such option, so it is only set where
# it exists).
from jupyter_client.manager import KernelManager  # noqa: E402

if "transport_encryption" in KernelManager.class_trait_names():
    c.KernelManager.transport_encryption = "auto"
