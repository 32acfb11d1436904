"""Where reports are written: a folder outside the repository, one new file per run.

A report is a record: it must not land in the working copy of the playbooks (where it
would be committed or lost with a checkout) and a second run must never overwrite the
first. `broadcaster drill` writes here; other report commands reuse the same choice.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def reports_folder(chosen: Path | None = None) -> Path:
    """`chosen` (`--out DIR`), else $XDG_STATE_HOME/broadcaster/reports, else
    ~/.local/state/broadcaster/reports (the XDG default; a relative value is ignored,
    as the XDG Base Directory spec says)."""
    if chosen is not None:
        return chosen
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local/state"
    return base / "broadcaster" / "reports"


def report_stem(name: str, unique: str, at: datetime | None = None) -> str:
    """A file name stem unique per run: `name`, the UTC time to the second, then `unique`
    (an alert id), e.g. `drill-major_fire-warning-20261123T101500Z-DRILL-1a2b3c4d5e6f`.
    Characters a file name should not hold become `_`."""
    stamp = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return "-".join(_UNSAFE.sub("_", part) for part in (name, stamp, unique) if part)


def write_new(path: Path, text: str) -> Path:
    """Write a file that must not exist yet: a report never replaces another."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as file:
        file.write(text)
    return path
