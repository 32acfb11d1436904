"""What changed in a template since the text two people approved: a unified diff
(difflib) turned into lines the console shows, each marked added, removed or kept."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["hunk", "added", "removed", "same"]
CONTEXT = 3  # lines kept around each change, as `git diff` does
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class DiffLine:
    kind: Kind
    text: str  # the line without its line break; a hunk: empty
    # "" when it ends with \n; "none" without a line break (the file's end), "crlf" with
    # \r\n: a change of only these would otherwise look like no change at all.
    ending: str = ""
    # a hunk's place: first line and count in the approved text, then in the current one
    where: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def spans(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """A hunk's (first, last) line in the approved and the current text; (0, 0): none."""
        a, b, c, d = self.where
        return (a, a + b - 1) if b else (0, 0), (c, c + d - 1) if d else (0, 0)


def diff_lines(approved: str, current: str) -> list[DiffLine]:
    """From the approved text to the current one; empty when they are the same."""
    out: list[DiffLine] = []
    lines = difflib.unified_diff(_lines(approved), _lines(current), n=CONTEXT)
    for number, line in enumerate(lines):
        if number < 2:  # the ---/+++ file header
            continue
        if line.startswith("@@"):
            found = _HUNK.match(line)
            if found is not None:
                a, b, c, d = found.groups()
                place = (int(a), int(b or 1), int(c), int(d or 1))
                out.append(DiffLine("hunk", "", where=place))
            continue
        kind: Kind = {"+": "added", "-": "removed"}.get(line[0], "same")  # type: ignore[assignment]
        out.append(DiffLine(kind, *_split_ending(line[1:])))
    return out


def _lines(text: str) -> list[str]:
    """Lines split at \n only, each with its break (str.splitlines also splits at \x0c,
    \x85 and others, which a template keeps inside a line)."""
    return _LINE.findall(text)


_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


def _split_ending(line: str) -> tuple[str, str]:
    if line.endswith("\r\n"):
        return line[:-2], "crlf"
    if line.endswith("\n"):
        return line[:-1], ""
    return line, "none"
