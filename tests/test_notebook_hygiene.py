"""Notebooks as students meet them in JupyterLab: opening and saving a committed notebook
changes nothing, progress bars survive being saved, and an unanswered exercise is named in the
errors that follow it (which is what nbgrader's Validate reports)."""
import json

import nbformat
import pytest

from coursetools import layout, nbgrader_ops, notebooks
from conftest import LABS, ROOT

COMMITTED = [layout.notebook(ROOT, step, lab) for step in ("source", *layout.GENERATED) for lab in LABS]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def kernel_language_info() -> dict:
    """What ipykernel reports in its kernel_info reply (JupyterLab writes it into the notebook)."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


@pytest.mark.parametrize("path", COMMITTED, ids=[str(p.relative_to(ROOT)) for p in COMMITTED])
def test_open_and_save_in_jupyter_leaves_committed_notebook_unchanged(path, tmp_path):
    """JupyterLab sets the kernelspec and the kernel's language_info when the kernel starts, then
    saves through jupyter_server's FileContentsManager: a committed notebook must already hold
    both, so it is neither marked modified nor rewritten."""
    from jupyter_server.services.contents.filemanager import FileContentsManager
    from nbformat.sign import NotebookNotary

    original = path.read_bytes()
    (tmp_path / "nb.ipynb").write_bytes(original)
    contents = FileContentsManager(root_dir=str(tmp_path))
    contents.notary = NotebookNotary(db_file=":memory:")
    model = json.loads(json.dumps(contents.get("nb.ipynb")["content"]))  # as the browser holds it
    committed = model["metadata"].get("language_info", {})
    info = kernel_language_info()
    assert str(committed.get("version", "")).split(".")[:2] == info["version"].split(".")[:2], \
        f"language_info.version {committed.get('version')!r}: this course runs Python {info['version']}"
    model["metadata"]["kernelspec"] = KERNELSPEC
    model["metadata"]["language_info"] = info | {"version": committed["version"]}
    contents.save({"type": "notebook", "format": "json", "content": model}, "nb.ipynb")
    assert (tmp_path / "nb.ipynb").read_bytes() == original, (
        f"{path.relative_to(ROOT)} changes when JupyterLab opens and saves it: give it the full "
        "kernelspec and language_info and write it with nbformat (see tests/test_notebook_hygiene.py)")


def test_progress_bars_saved_as_text_and_unanswered_exercise_named(tmp_path):
    """In a real kernel: a closed ``helpers.progress.tqdm`` bar leaves its final text line in the
    saved outputs instead of a widget reference ("model not found" on reopen); a stub's
    NotImplementedError names its exercise and the error of the next cell run says which
    exercise is unanswered; an unrelated later error gets no such note."""
    from nbclient import NotebookClient

    stub = '# YOUR CODE HERE\nraise NotImplementedError("Exercise 1 — Make the data: not answered yet")'
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (
        "import helpers\nfrom helpers.progress import tqdm",
        "for _ in tqdm(range(40), desc='training'):\n    pass",
        "for _ in tqdm(range(40), desc='inner', leave=False):\n    pass",
        stub,
        "X.shape",
        "y_undefined",
    )]
    NotebookClient(nb, timeout=120, allow_errors=True, config=notebooks.kernel_config(),
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = json.dumps(nb)
    assert "application/vnd.jupyter.widget-view+json" not in saved
    [bar] = nb.cells[1].outputs
    assert bar.data == {"text/plain": bar.data["text/plain"]} and bar.data["text/plain"].startswith("training: 100%")
    assert "40/40" in bar.data["text/plain"]
    assert all(not o.get("data", {}).get("text/plain") for o in nb.cells[2].outputs)  # leave=False: nothing left
    assert nb.cells[3].outputs[0].evalue == "Exercise 1 — Make the data: not answered yet"
    note = "\n".join(nb.cells[4].outputs[0].traceback)
    assert nb.cells[4].outputs[0].ename == "NameError"
    assert "Exercise 1 — Make the data is not answered yet" in note
    assert "not answered" not in "\n".join(nb.cells[5].outputs[0].traceback)


@pytest.mark.e2e
def test_validate_on_blank_release_names_each_unanswered_exercise(tmp_path):
    """nbgrader's Validate (the student's button) on the untouched lab 01 release: every failing
    test cell's error names the exercise whose answer is missing."""
    lab = LABS[0]
    release = tmp_path / f"{lab}.ipynb"
    release.write_bytes(layout.notebook(ROOT, "release", lab).read_bytes())
    headings = notebooks.exercise_headings(notebooks.read(release).cells)
    result = nbgrader_ops.validate(ROOT, release)
    assert result.failed and len(result.errors) == len(result.failed)
    named = [error for error in result.errors if "is not answered yet" in error]
    assert len(named) == len(result.failed), "\n\n".join(result.errors)
    for grade_id, cell in notebooks.solution_cells(notebooks.read(release)).items():
        name = notebooks.exercise_name(*headings[grade_id])
        assert any(f"{name} is not answered yet" in error for error in named), name
