"""Failure messages grouped by what they say, not by the numbers in them.

Twenty-three students whose labels have the wrong shape get twenty-three slightly different
messages ("y has shape (4,); expected (4, 1)", "y has shape (1, 4); expected (4, 1)", ...).
For an instructor they are one mistake. ``normalise`` turns a message into a *pattern* in which
the parts that vary between students (numbers, quoted values, shapes and other sequences of
numbers, file paths, memory addresses) are placeholders; messages with the same pattern are
one group. Words stay: ``y has dtype torch.int64`` and ``X has shape ...`` are different checks
and stay apart (the report also keys groups by where in the test cell the error was raised).

``describe`` then shows a group as its messages' common text: a placeholder is put back
where every member has the same value there ("expected (4, 1)" stays) and left as ``…``
where members differ ("y has shape (…); expected (4, 1)").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A replaced span is one character of Unicode's private use planes: not a letter, digit or
# punctuation, so no later pattern matches inside it. Its code point is the span's index plus
# the plane's base: plane 15 for values (numbers, quoted values, containers of values), which
# may collapse into a container, plane 16 for the rest (paths, addresses), which may not.
_VALUE, _OTHER = 0xF0000, 0x100000
_SPAN = re.compile("[\U000F0000-\U000FFFFD\U00100000-\U0010FFFD]")
_V = "[\U000F0000-\U000FFFFD]"


def _index(char: str) -> int:
    return ord(char) - (_OTHER if ord(char) >= _OTHER else _VALUE)


# Leaf spans, in the order they are replaced (earlier kinds protect their text from later ones).
_LEAVES = [
    ("address", re.compile(r"\b0x[0-9a-fA-F]+\b"), "0x…"),
    # quoted values: the opening quote does not follow a letter (model's), the closing one is
    # not followed by one (doesn't)
    ("quoted", re.compile(r"(?<![\w'\"])'[^'\n]*'(?![\w'])|(?<![\w'\"])\"[^\"\n]*\"(?![\w\"])"), "'…'"),
    # absolute paths, and relative ones that end in a file name with a known extension
    ("path", re.compile(r"(?<![\w.\-/])(?:~|[A-Za-z]:)?/(?:[\w.\-]+/)*[\w.\-]+"
                        r"|(?<![\w.\-/])(?:[\w.\-]+/)*[\w\-]+\.(?:pth|pt|ckpt|ipynb|py|json|csv|txt|npy|npz|pkl|png|jpe?g)\b"),
     "<path>"),
    # numbers that are words of their own: 0.693, -3, 1e-05, 99.5 (in 99.5%), nan; not float32,
    # and not the full stop after "expected 2000."
    ("number", re.compile(r"(?<![\w.])[-+]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?(?!\w)"
                          r"|(?<![\w.])[-+]?(?:nan|inf)(?!\w)", re.IGNORECASE), "…"),
]
# Containers whose items are all replaced values collapse into one span, innermost first:
# (4, 1), [[0], [1]], torch.Size([4]) -> torch.Size([…]), {0.0, 1.0}.
_CONTAINERS = [
    # a tuple has two items or a trailing comma: (4,) is a shape, unsqueeze(1) is a call
    ("tuple", re.compile(rf"\(\s*{_V}(?:\s*,\s*{_V})+\s*,?\s*\)|\(\s*{_V}\s*,\s*\)"), "(…)"),
    ("list", re.compile(rf"\[\s*{_V}(?:\s*,\s*{_V})*\s*,?\s*\]"), "[…]"),
    ("set", re.compile(rf"\{{\s*{_V}(?:\s*,\s*{_V})*\s*,?\s*\}}"), "{…}"),
]
_PLACEHOLDER = {kind: shown for kind, _, shown in _LEAVES + _CONTAINERS}


@dataclass(frozen=True)
class Normalised:
    """A message as ``pattern`` (placeholders for the varying parts: the grouping key) and the
    original text and kind of each placeholder, in order. ``template`` is the pattern with one
    marker character per placeholder, for ``describe``."""
    pattern: str
    template: str
    values: tuple[str, ...]
    kinds: tuple[str, ...]


def strip_ansi(text: str) -> str:
    """Text without terminal colour codes (IPython colours tracebacks and error names)."""
    return _ANSI.sub("", text)


def normalise(message: str) -> Normalised:
    """Split ``message`` into its pattern and the values that vary between students."""
    text = " ".join(_SPAN.sub("", strip_ansi(message)).split())
    spans: list[tuple[str, str]] = []  # (kind, original text)

    def expand(s: str) -> str:
        return _SPAN.sub(lambda m: spans[_index(m.group(0))][1], s)

    def keep(kind: str):
        def replace(match: re.Match) -> str:
            spans.append((kind, expand(match.group(0))))
            return chr((_OTHER if kind in ("path", "address") else _VALUE) + len(spans) - 1)
        return replace

    for kind, regex, _ in _LEAVES:
        text = regex.sub(keep(kind), text)
    changed = True
    while changed:
        changed = False
        for kind, regex, _ in _CONTAINERS:
            new = regex.sub(keep(kind), text)
            changed |= new != text
            text = new
    order: list[int] = []  # span indices in reading order; the template numbers them 0, 1, ...

    def renumber(match: re.Match) -> str:
        order.append(_index(match.group(0)))
        return chr(_VALUE + len(order) - 1)
    template = _SPAN.sub(renumber, text)
    pattern = _SPAN.sub(lambda m: _PLACEHOLDER[spans[order[_index(m.group(0))]][0]], template)
    return Normalised(pattern or "(no message)", template,
                      tuple(spans[i][1] for i in order), tuple(spans[i][0] for i in order))


def describe(members: list[Normalised]) -> str:
    """The common text of messages that share a pattern: values every member agrees on are
    shown, values that differ are placeholders (``y has shape (…); expected (4, 1)``)."""
    if not members:
        return ""
    first = members[0]

    def shown(match: re.Match) -> str:
        i = _index(match.group(0))
        if all(len(m.values) > i and m.values[i] == first.values[i] for m in members):
            return first.values[i]
        return _PLACEHOLDER[first.kinds[i]]
    return _SPAN.sub(shown, first.template) or "(no message)"


SECRET_MIN_CHARS = 16  # hidden lines at least this long are redacted wherever they show up


def recognisable(lines) -> list[str]:
    """The distinct lines long enough to be recognised inside other text, longest first (what
    ``redact`` looks for)."""
    return sorted({line for line in lines if len(line) >= SECRET_MIN_CHARS}, key=len, reverse=True)


def redact(text: str, secret_lines: list[str]) -> str:
    """``text`` with every occurrence of a hidden-test source line replaced by a marker.

    The report shows messages only, never code; messages come from the checks, but a student's
    own exception or a warning printed to stderr could quote a source line. This is the safety
    net for those cases."""
    for line in secret_lines:
        if line and line in text:
            text = text.replace(line, "[hidden test code]")
    return text
