"""The code policy: what it flags in a student's cells, and that it never flags honest work
(every lab's reference solution and every fidelity case)."""
import nbformat
import pytest

from coursetools import bench, fidelity, layout, notebooks
from coursetools.grading import policy, submission
from conftest import LABS, ROOT

LAB = LABS[0]


def _scan(code: str, lab: str = LAB, prepend: str | None = None) -> list[str]:
    release = notebooks.read(layout.notebook(ROOT, "release", lab))
    source = notebooks.read(layout.notebook(ROOT, "source", lab))
    first = next(iter(notebooks.solution_cells(release)))
    nb = notebooks.fill_solutions(release, source, {first: code})
    if prepend is not None:
        nb.cells.insert(1, nbformat.v4.new_code_cell(prepend))
    allowed = bench.load_specs()[lab].get("allowed_imports", [])
    return [f.what for f in policy.scan(nb, release, allowed)]


@pytest.mark.parametrize("code, expected", [
    ("get_ipython().events.register('pre_run_cell', print)", "IPython shell access"),
    ("import IPython\nIPython.get_ipython()", "imports IPython"),
    ("exec('x = 1')", "exec()"),
    ("eval('1')", "eval()"),
    ("__import__('os')", "__import__()"),
    ("import sys\nsys.modules['torch']", "imports sys"),
    ("import builtins", "imports builtins"),
    ("import importlib", "imports importlib"),
    ("import ctypes", "imports ctypes"),
    ("import gc", "imports gc"),
    ("import inspect", "imports inspect"),
    ("import subprocess", "imports subprocess"),
    ("import socket", "imports socket"),
    ("from signal import SIGKILL", "imports signal"),
    ("import requests", "imports requests"),
    ("x = ().__class__.__mro__[1].__subclasses__()", "accesses .__mro__"),
    ("x = __builtins__", "uses __builtins__"),
    ("torch.equal = lambda a, b: True", "assigns torch.equal"),
    ("t = torch\nt.allclose = lambda *a, **k: True", "assigns t.allclose"),
    ("for m in [torch]:\n    m.equal = print", "assigns m.equal"),
    ("import helpers.checks\nhelpers.checks.check_tensor = print", "assigns helpers.checks.check_tensor"),
    ("del torch.equal", "deletes torch.equal"),
    ("nn.Module.forward = lambda self, x: x", "assigns nn.Module.forward"),
    ("setattr(torch, 'equal', print)", "setattr()"),
    ("getattr(torch, 'eq' + 'ual')", "getattr() with an attribute name built at run time"),
    ("class Yes:\n    def __eq__(self, other):\n        return True", "class Yes defines __eq__"),
    ("X = type('Y', (), {'__bool__': lambda s: True})", "uses the string '__bool__'"),
    ("import os\nos.system('ls')", "calls os.system"),
    ("import os\nos.fork()", "calls os.fork"),
    ("import os\nos.kill(1, 9)", "calls os.kill"),
    ("open('../../../source/lab01_perceptron/lab01_perceptron.ipynb').read()", "file path outside the working directory"),
    ("from pathlib import Path\nPath('/etc/passwd').read_text()", "file path outside the working directory"),
    ("!ls /", "IPython shell access"),
    ("%%bash\nls", "IPython shell access"),
    ("%run other.py", "IPython shell access"),
])
def test_flags_what_no_answer_needs(code, expected):
    found = _scan(code)
    assert any(expected in f for f in found), f"{code!r}: {found}"


def test_added_cells_and_edited_given_cells_are_scanned():
    assert any("imports sys" in f for f in _scan("pass", prepend="import sys"))


@pytest.mark.parametrize("code", [
    "%time x = 1",
    "%%time\nx = 1",
    "import os\nos.makedirs('models', exist_ok=True)",
    "torch.backends.cudnn.deterministic = True",
    "print(torch.__version__, type(model).__name__ if 'model' in dir() else '')",
    "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(2, 1)\n"
    "    def forward(self, x):\n        return self.fc(x)\n    def __repr__(self):\n        return 'Net'",
    "act = getattr(nn, 'ReLU')()\nname = 'Tanh'\nact2 = getattr(nn, name)()",
    "import numpy as np\nnp.random.seed(0)\nimport matplotlib.pyplot as plt\nplt.rcParams['figure.dpi'] = 80",
    "from collections import defaultdict\nimport copy, math, random, time",
    "x = 1 +",  # a syntax error fails when it runs; it is not a policy matter
])
def test_leaves_ordinary_code_alone(code):
    assert _scan(code) == []


@pytest.mark.parametrize("lab", LABS)
def test_no_finding_on_references_and_fidelity_cases(lab):
    release = notebooks.read(layout.notebook(ROOT, "release", lab))
    source = notebooks.read(layout.notebook(ROOT, "source", lab))
    allowed = bench.load_specs()[lab].get("allowed_imports", [])
    for case in fidelity.load_cases(lab, merge=False):
        if case.kind == "blank":
            continue
        nb = notebooks.fill_solutions(release, source, case.replace if case.kind != "reference" else None)
        assert policy.scan(nb, release, allowed) == [], f"{lab}/{case.name}"


def test_special_files_are_refused(tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "lab.ipynb").write_text("{}")
    (folder / "link").symlink_to("/etc/passwd")
    import os

    os.mkfifo(folder / "pipe")
    found = submission.special_files(folder)
    assert any("link (symlink)" in f for f in found) and any("pipe (FIFO)" in f for f in found)
    submission.digest(folder)  # never opens the FIFO (would block)
