"""Where reports go: a folder outside the repository, and file names that never clash.

Reports name officers and carry the texts of real warnings: they belong to the user's
state folder, not to the deployment's git checkout. A second report of the same thing
gets a file of its own instead of overwriting the first.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path


def reports_dir(explicit: Path | None = None) -> Path:
    """`explicit` when given; else $XDG_STATE_HOME/broadcaster/reports, else
    ~/.local/state/broadcaster/reports (the XDG rule: a relative $XDG_STATE_HOME is ignored)."""
    if explicit is not None:
        return explicit
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "broadcaster" / "reports"


def safe_name(text: str) -> str:
    """A file name part: ids may hold `:`, which some file systems refuse."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)


def new_report_paths(
    folder: Path, stem: str, suffixes: tuple[str, ...] = (".json", ".html")
) -> tuple[Path, ...]:
    """Fresh paths `<stem>-<UTC timestamp>[-n]<suffix>` in `folder` (created), one per
    suffix; the first is created empty at once, so two reports at the same second differ."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    n = 1
    while True:
        name = f"{safe_name(stem)}-{stamp}" + (f"-{n}" if n > 1 else "")
        paths = tuple(folder / f"{name}{suffix}" for suffix in suffixes)
        if not any(p.exists() for p in paths[1:]):
            try:
                paths[0].open("x").close()
            except FileExistsError:
                pass
            else:
                return paths
        n += 1
