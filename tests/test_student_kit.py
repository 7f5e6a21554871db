"""The student kit (`course student-kit`): no solution text, hidden test or instructor tooling
in it; `helpers` installs from it on its own; the student-side nbgrader config carries the
course id and the exchange, and neither config needs coursetools."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coursetools import layout, nbgrader_ops
from coursetools.student_kit import INSTRUCTOR_LAB_PLUGINS, INSTRUCTOR_SERVER_EXTENSIONS
from conftest import LABS, ROOT

REGION = re.compile(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)")
SUBSTANTIAL = 24  # characters, whitespace normalised: shorter lines are generic (`return nn.Sequential(`)
# Lab 08's model answer shares its conv block with helpers.models.CifarCNN, the architecture of
# the lab 09 backbone that students import by design (and that ships with helpers anyway).
SHARED_WITH_HELPERS = {
    "helpers/models.py": {"nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),",
                          "nn.BatchNorm2d(out_channels),"},
}


def normalise(line: str) -> str:
    return " ".join(line.split())


def cell_texts(path: Path) -> list[str]:
    return ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in json.loads(path.read_text())["cells"]]


def secret_lines() -> dict[str, str]:
    """Every substantial line inside a solution region or a hidden-test block of source/ (->
    where it came from), less lines the source also shows outside them (e.g. a visible check
    that a hidden test repeats)."""
    secret, public = {}, []
    for lab in LABS:
        for text in cell_texts(layout.notebook(ROOT, "source", lab)):
            inside = False
            for line in text.splitlines():
                if REGION.search(line):
                    inside = REGION.search(line).group(1) == "BEGIN"
                elif inside:
                    secret.setdefault(normalise(line), lab)
                else:
                    public.append(normalise(line))
    public_text = "\n".join(public)
    return {line: lab for line, lab in secret.items() if len(line) >= SUBSTANTIAL and line not in public_text}


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    out = tmp_path_factory.mktemp("kit") / "pytorch-course"
    env = {k: v for k, v in os.environ.items() if k != "COURSE_EXCHANGE"}  # the default exchange
    proc = subprocess.run([sys.executable, "-m", "coursetools.cli", "student-kit", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_kit_holds_the_release_notebooks_helpers_and_student_files(kit):
    for lab in LABS:
        assert (kit / "labs" / lab / f"{lab}.ipynb").read_bytes() == layout.notebook(ROOT, "release", lab).read_bytes()
    helpers = {p.relative_to(ROOT) for p in (ROOT / "helpers").rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert helpers <= {p.relative_to(kit) for p in kit.rglob("*")}
    for name in ("README.md", "pyproject.toml", "nbgrader_config.py"):
        assert (kit / name).is_file()
    assert (kit / "README.md").read_text().split("\n", 1)[1].strip() in (ROOT / "README.md").read_text()
    parts = {part for p in kit.rglob("*") for part in p.relative_to(kit).parts}
    forbidden = {"source", "solutions", "coursetools", "autograded", "submitted", "feedback", "grading",
                 "gradebook.db", "tests", ".git"}
    assert not parts & forbidden, parts & forbidden


def test_no_solution_or_hidden_test_survives_in_the_kit(kit):
    secrets = secret_lines()
    assert len(secrets) > 500, "the source notebooks should hold hundreds of solution and hidden-test lines"
    leaks = []
    for path in sorted(p for p in kit.rglob("*") if p.is_file() and p.suffix != ".pt"):
        rel = str(path.relative_to(kit))
        texts = cell_texts(path) if path.suffix == ".ipynb" else [path.read_text(errors="replace")]
        text = "\n".join(normalise(line) for t in texts for line in t.splitlines())
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            if marker in text:
                leaks.append(f"{rel}: nbgrader marker {marker!r}")
        leaks += [f"{rel}: {line!r} (from {lab})" for line, lab in secrets.items()
                  if line in text and line not in SHARED_WITH_HELPERS.get(rel, ())]
    assert not leaks, "\n".join(leaks)


def test_helpers_installs_from_the_kit_alone(kit, tmp_path):
    """`pip install` of the kit alone (offline, no dependencies resolved) gives an importable
    `helpers` with its pretrained weights, outside the repository, and puts the student's
    Jupyter configuration into the environment's etc/jupyter, where it turns nbgrader's
    instructor extensions off even beside nbgrader's own switches."""
    from jupyter_server.extension.config import ExtensionConfigManager

    copy = shutil.copytree(kit, tmp_path / "kit")  # setuptools builds in the folder it installs from
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                          "--no-build-isolation", "--target", str(target), str(copy)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert "warning" not in pip.stderr.lower(), pip.stderr  # a quiet install
    probe = ("import helpers, helpers.models as m; "
             "print(helpers.__file__); print(m.PRETRAINED_FILE); print(type(m.load_pretrained_backbone()).__name__)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    module, weights, model = run.stdout.split()
    assert Path(module).is_relative_to(target) and Path(weights).is_relative_to(target), run.stdout
    assert model == "CifarCNN"
    config = target / "etc" / "jupyter"  # pip puts these in the environment's etc/jupyter
    assert (config / "nbgrader_config.py").read_text() == (kit / "nbgrader_config.py").read_text()
    nbgrader_switches = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "nbgrader.json"
    shutil.copy(nbgrader_switches, config / "jupyter_server_config.d")  # as nbgrader's install puts them
    enabled = ExtensionConfigManager(read_config_path=[str(config)]).get_jpserver_extensions()
    assert enabled["nbgrader.server_extensions.assignment_list"], enabled
    assert not any(enabled[name] for name in INSTRUCTOR_SERVER_EXTENSIONS), enabled
    lab = json.loads(next((config / "labconfig" / "page_config.d").glob("*.json")).read_text())
    assert set(lab["disabledExtensions"]) == set(INSTRUCTOR_LAB_PLUGINS)


def test_configs_load_without_coursetools_and_reach_students(kit, tmp_path):
    """Both nbgrader configs load where coursetools cannot be imported (a student's
    environment); the kit's carries the course id, and the exchange comes from COURSE_EXCHANGE
    or else the instructor's choice baked in when the kit was written."""
    probe = """
import json, sys
sys.modules["coursetools"] = None  # any import of it fails
from traitlets.config.loader import PyFileConfigLoader
out = {}
for name, folder in (("course", sys.argv[1]), ("kit", sys.argv[2])):
    c = PyFileConfigLoader("nbgrader_config.py", path=folder).load_config()
    out[name] = [c.CourseDirectory.course_id, c.Exchange.root, c.Execute.timeout]
print(json.dumps(out))
"""

    def load(**env):
        base = {k: v for k, v in os.environ.items() if k != "COURSE_EXCHANGE"}
        proc = subprocess.run([sys.executable, "-c", probe, str(ROOT), str(kit)], cwd=tmp_path, env=base | env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    instructor = nbgrader_ops.load_config(ROOT)
    default = load()
    assert default["kit"] == default["course"] == [instructor.CourseDirectory.course_id,
                                                   os.path.expanduser("~/.local/share/nbgrader/exchange"),
                                                   instructor.Execute.timeout]
    shared = load(COURSE_EXCHANGE="/srv/nbgrader/exchange")
    assert shared["course"][1] == shared["kit"][1] == "/srv/nbgrader/exchange"
