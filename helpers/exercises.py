"""Unanswered exercises, named where students look: the answer-cell stub and the next error.

A release notebook's answer cell holds ``raise NotImplementedError("<exercise>: not answered
yet")`` (``stub_message``; ``course build`` writes it). Run as it is, the next cell (the
exercise's test cell) fails too, usually with a bare ``NameError``, and that failure is all
nbgrader's Validate report shows. ``install`` (run when ``helpers`` is imported in a notebook)
adds a note to such an error naming the exercise whose stub raised in the cell run just
before, so the report says which answer is missing.
"""
from __future__ import annotations

STUB_SUFFIX = ": not answered yet"

# Mutated in place, never rebound: the grading kernel's guard snapshots this module's attributes.
_state: dict = {}


def stub_message(exercise: str) -> str:
    """The stub's message for ``exercise`` ("Exercise 2 — The model: not answered yet")."""
    return exercise + STUB_SUFFIX


def unanswered_note(exercise: str) -> str:
    return (f"{exercise} is not answered yet: its answer cell above still raises NotImplementedError. "
            "Write your code there, delete the `raise NotImplementedError(...)` line, run that cell, "
            "then run this one again.")


def _handler(shell, etype, value, tb, tb_offset=None):
    """IPython's custom exception handler: remember a stub's exercise, note it on the error of
    the cell run right after it, then show the traceback as IPython would."""
    previous = _state.pop("stub", None)
    message = str(value)
    if isinstance(value, NotImplementedError) and message.endswith(STUB_SUFFIX):
        _state["stub"] = (shell.execution_count, message[: -len(STUB_SUFFIX)])
    elif previous and previous[0] == shell.execution_count - 1 and hasattr(value, "add_note"):
        value.add_note(unanswered_note(previous[1]))
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset, running_compiled_code=True)


def install(shell=None) -> bool:
    """Register the handler with the running IPython shell (once; never over another custom
    handler). Returns whether it is registered; outside IPython it does nothing."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return False
    if _state.get("shell") is shell and shell.custom_exceptions == (Exception,):
        return True
    if shell.custom_exceptions:
        return False
    shell.set_custom_exc((Exception,), _handler)
    _state["shell"] = shell
    return True
