"""The trusted side of executing a submission: what nbgrader's Execute does, plus what the
scorer needs to know that the kernel cannot forge by printing.

For every graded test cell it
1. evaluates the guard's ``restore()`` first (outside IPython's input transformers, as a
   user expression of an empty silent request) and records what had been tampered with;
2. appends an acknowledgement with a fresh nonce, which must come back as a display message
   of the grader's own MIME type (it is removed from the notebook);
3. records the execute reply's status.
It also caps the bytes of output a notebook may produce (more is dropped with a note), so a
submission that prints 100 MB cannot blow up the autograded notebook or the grader's memory.
The observations go to ``resources["course_trusted"]`` for :mod:`scorer`.
"""
from __future__ import annotations

import ast
import json
import secrets

from jupyter_client.manager import AsyncKernelManager
from nbclient.util import run_sync
from nbformat.notebooknode import NotebookNode
from traitlets import Integer, Type

from nbgrader import utils
from nbgrader.preprocessors import Execute

from coursetools.grading.kernel import SandboxedKernelManager

ACK_MIME = "application/vnd.course-grader.ack+json"
RESTORE = "__import__('_course_guard').restore()"


def is_test_cell(cell) -> bool:
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def _size(msg: dict) -> int:
    content = msg.get("content", {})
    if "text" in content:
        return len(content["text"])
    if "data" in content:
        return sum(len(str(v)) for v in content["data"].values())
    return 0


class TrustedExecute(Execute):
    output_limit_bytes = Integer(
        4 * 1024 ** 2, help="Bytes of output a whole notebook may produce; more is dropped with a note."
    ).tag(config=True)

    # A class default, not an __init__ argument: nbconvert re-runs NotebookClient.__init__ in
    # preprocess(), which resets traits to their defaults and configured values.
    kernel_manager_class = Type(SandboxedKernelManager, klass=AsyncKernelManager, config=True)

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)

    def preprocess(self, nb, resources=None, km=None):
        self._trusted = {"cells": {}, "tamper": [], "truncated_bytes": 0}
        self._bytes = 0
        self._current = None          # grade id of the graded test cell being executed
        self._cell_truncated = 0
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if resources is not None:
                resources["course_trusted"] = self._trusted

    async def _restore(self, grade_id: str) -> None:
        try:
            reply = await self.kc.execute_interactive(
                "", silent=True, store_history=False, user_expressions={"restore": RESTORE},
                timeout=self.timeout or 60, output_hook=lambda msg: None)
            result = reply["content"]["user_expressions"]["restore"]
            changed = json.loads(ast.literal_eval(result["data"]["text/plain"]))
        except Exception:  # noqa: BLE001 - any failure here means the guard was defeated
            self._trusted["tamper"].append(f"before {grade_id}: the grader's guard did not answer")
            return
        if changed:
            shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
            self._trusted["tamper"].append(f"before {grade_id}: restored {shown}")

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if not is_test_cell(cell):
            self._current = None
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        await self._restore(grade_id)
        nonce = secrets.token_hex(16)
        self._current = grade_id
        self._cell_truncated = 0
        self._trusted["cells"][grade_id] = {"nonce": nonce, "ack": False, "status": None}
        source = cell.source
        cell.source = f"{source}\n__import__('_course_guard').ack({nonce!r})\n"
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            cell.source = source
            self._current = None

    execute_cell = run_sync(async_execute_cell)  # nbclient binds the synchronous twin at class level

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        cell, reply = kwargs["cell"], kwargs["execute_reply"]
        if self._current is not None and self._current in self._trusted["cells"]:
            self._trusted["cells"][self._current]["status"] = reply["content"].get("status")
        if self._cell_truncated:
            cell.outputs.append(NotebookNode(output_type="stream", name="stdout", text=(
                f"\n[output truncated by the grader: {self._cell_truncated} more bytes; a notebook may "
                f"print at most {self.output_limit_bytes // 1024 ** 2} MB]\n")))
            self._cell_truncated = 0

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        data = content.get("data") or {}
        if ACK_MIME in data:
            verdict = self._trusted["cells"].get(self._current or "")
            payload = data[ACK_MIME]
            if verdict is not None and isinstance(payload, dict) and payload.get("nonce") == verdict["nonce"]:
                verdict["ack"] = True
            return None
        if msg["msg_type"] != "error":
            size = _size(msg)
            self._bytes += size
            if self._bytes > self.output_limit_bytes:
                self._cell_truncated += size
                self._trusted["truncated_bytes"] += size
                return None
        return super().output(outs, msg, display_id, cell_index)
