"""Problems found in the files a communications office edits, reported one line each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class Problem:
    """One thing wrong in one file: where, what, and what to do about it."""

    file: str
    where: str
    what: str
    fix: str = ""
    severity: Literal["error", "warning"] = "error"
    # What an error makes unusable, set aside while the rest runs: "playbook:<id>",
    # "channel:<id>" or "approvals". Empty for problems that set nothing aside.
    subject: str = ""

    def __str__(self) -> str:
        place = f"{self.file}: {self.where}" if self.where else self.file
        line = f"{self.severity}: {place}: {self.what}"
        return f"{line} ({self.fix})" if self.fix else line


class ConfigError(Exception):
    """Raised when files cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def display_path(path: Path, base: Path | None = None) -> str:
    """A path as a person would type it: relative to `base` (or the working folder) when inside."""
    for root in (base, Path.cwd()):
        if root is None:
            continue
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            continue
    return str(path)
