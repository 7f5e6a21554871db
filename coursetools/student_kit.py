"""``course student-kit DIR``: what students get when there is no JupyterHub.

The kit holds the release notebooks (``labs/<lab>/``), the ``helpers`` package with its data,
a ``pyproject.toml`` with the student dependencies only (so ``pip install DIR`` installs
``helpers`` on its own), a README (README.md's "For students" section) and a student-side
``nbgrader_config.py`` carrying the course id, the exchange and the Validate time limits. Its
``jupyter-config/`` files, installed by pip into the environment's ``etc/jupyter``, hide the
instructor extensions of nbgrader (Formgrader, Create Assignment, Courses). Nothing else is
copied: no ``source/``, ``solutions/``, hidden tests or ``coursetools``.
"""
from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path

from coursetools import layout, nbgrader_ops

#: Dependencies of the course project that students do not need (instructor tooling and tests).
INSTRUCTOR_ONLY = {"pytest", "psutil", "nbformat"}

#: Course settings a student's nbgrader needs: the course id (fetch, submit) and the limits
#: the Validate button runs notebooks with.
STUDENT_SETTINGS = [("CourseDirectory", "course_id"), ("Execute", "timeout"),
                    ("Execute", "interrupt_on_timeout"), ("Execute", "startup_timeout")]

#: nbgrader's instructor-side extensions, off in a student's environment.
INSTRUCTOR_SERVER_EXTENSIONS = ["nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"]
INSTRUCTOR_LAB_PLUGINS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                          "@jupyter/nbgrader:course-list"]

JUPYTER_CONFIG = "jupyter-config"
CONFIG_NAME = "pytorch-classification-course-student.json"


def write_kit(course: Path, out: Path, labs: list[str], exchange: str | None = None) -> None:
    """Write the student kit of ``labs`` into ``out`` (new or empty). ``exchange`` is the
    exchange root students default to (default: the course's, ``$COURSE_EXCHANGE`` included)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty: choose a new folder (or remove it)")
    config = nbgrader_ops.load_config(course)
    ignore = shutil.ignore_patterns(*config.CourseDirectory.ignore, "__pycache__", "*.pyc")
    out.mkdir(parents=True, exist_ok=True)
    for lab in labs:
        shutil.copytree(course / "release" / lab, out / "labs" / lab, ignore=ignore)
    shutil.copytree(layout.REPO_ROOT / "helpers", out / "helpers", ignore=ignore)
    (out / "nbgrader_config.py").write_text(student_config(config, exchange or config.Exchange.root))
    for section, switches in (("jupyter_server_config.d", {"ServerApp": {"jpserver_extensions": {
                                  name: False for name in INSTRUCTOR_SERVER_EXTENSIONS}}}),
                              ("labconfig/page_config.d", {"disabledExtensions": {
                                  name: True for name in INSTRUCTOR_LAB_PLUGINS}})):
        path = out / JUPYTER_CONFIG / section / CONFIG_NAME
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(switches, indent=2) + "\n")
    (out / "pyproject.toml").write_text(pyproject())
    (out / "README.md").write_text(readme())


def student_config(config, exchange: str) -> str:
    """The student-side nbgrader_config.py: the course's student settings as literals, and the
    exchange root from ``$COURSE_EXCHANGE`` with the instructor's choice as default."""
    lines = ['"""nbgrader configuration for students of this course (written by `course student-kit`).',
             "",
             "nbgrader reads it from the folder JupyterLab starts in, and pip installs a copy into the",
             "environment's etc/jupyter. COURSE_EXCHANGE overrides the exchange folder.",
             '"""', "import os", "", "c = get_config()  # noqa: F821", ""]
    for section, name in STUDENT_SETTINGS:
        if name in config[section]:
            lines.append(f"c.{section}.{name} = {config[section][name]!r}")
    lines.append(f'c.Exchange.root = os.environ.get("COURSE_EXCHANGE") or {exchange!r}')
    if "transport_encryption" in config.KernelManager:
        # Only where the student's jupyter_client has the option (see the course's config).
        lines += ["", "from jupyter_client.manager import KernelManager  # noqa: E402", "",
                  'if "transport_encryption" in KernelManager.class_trait_names():',
                  f"    c.KernelManager.transport_encryption = {config.KernelManager.transport_encryption!r}"]
    return "\n".join(lines) + "\n"


def pyproject() -> str:
    """The kit's pyproject.toml: the course project's name, version and dependencies, less
    :data:`INSTRUCTOR_ONLY`; package ``helpers`` with its data; the Jupyter config files."""
    project = tomllib.loads((layout.REPO_ROOT / "pyproject.toml").read_text())["project"]
    deps = [d for d in project["dependencies"] if _dist_name(d) not in INSTRUCTOR_ONLY]
    data_patterns = sorted({f"*{p.suffix}" for p in (layout.REPO_ROOT / "helpers" / "pretrained").iterdir()
                            if p.is_file()})
    data_dirs = {"etc/jupyter": ["nbgrader_config.py"]}
    for section in ("jupyter_server_config.d", "labconfig/page_config.d"):
        data_dirs[f"etc/jupyter/{section}"] = [f"{JUPYTER_CONFIG}/{section}/{CONFIG_NAME}"]
    q = json.dumps  # a JSON string is a TOML basic string
    return "\n".join([
        "[build-system]",
        'requires = ["setuptools>=77"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {q(project['name'] + '-student')}",
        f"version = {q(project['version'])}",
        f"description = {q('Student kit: the helpers package the labs import, and its dependencies.')}",
        'readme = "README.md"',
        f"requires-python = {q(project['requires-python'])}",
        "dependencies = [",
        *[f"    {q(d)}," for d in deps],
        "]",
        "",
        "[tool.setuptools]",
        # helpers.pretrained holds data only; listing it keeps setuptools quiet about it.
        'packages = ["helpers", "helpers.pretrained"]',
        "",
        "[tool.setuptools.package-data]",
        f'"helpers.pretrained" = {q(data_patterns)}',
        "",
        "[tool.setuptools.data-files]",
        *[f"{q(target)} = {q(files)}" for target, files in data_dirs.items()],
        "",
    ])


def _dist_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def readme() -> str:
    """The kit's README: the "For students" section of the course README, as its own page."""
    text = (layout.REPO_ROOT / "README.md").read_text()
    title = text.splitlines()[0].lstrip("# ").strip()
    match = re.search(r"^## For students\n(.*?)(?=^## )", text, re.M | re.S)
    if not match:
        raise ValueError("README.md has no '## For students' section to give students")
    return f"# {title}: student kit\n{match.group(1).rstrip()}\n"
