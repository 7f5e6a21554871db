"""Plain-text tables for the ``course`` commands' reports."""
from __future__ import annotations

from collections.abc import Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, a dashed rule under the header; the last
    column is not padded (it may hold long status text)."""
    lines = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    widths[-1] = 0
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * max(w, len(header[i])) for i, w in enumerate(widths)))
    return "\n".join(text)
