"""Where reports go: the user's state folder, never over an earlier report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from broadcaster.reports import report_stem, reports_folder, write_new


def test_reports_go_to_the_state_folder_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert reports_folder() == tmp_path / "state" / "broadcaster" / "reports"
    assert reports_folder(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # ignored, as the XDG rule says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert reports_folder() == tmp_path / "home" / ".local" / "state" / "broadcaster" / "reports"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert reports_folder() == tmp_path / "home" / ".local" / "state" / "broadcaster" / "reports"


def test_a_report_never_replaces_another(tmp_path: Path):
    at = datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    stem = report_stem("incident-E:1", "FW-1:retraction", at)
    assert stem == "incident-E_1-20261123T101500Z-FW-1_retraction"
    first = write_new(tmp_path / "r" / f"{stem}.json", "{}")
    assert first.read_text() == "{}"
    with pytest.raises(FileExistsError):
        write_new(first, "{}")
