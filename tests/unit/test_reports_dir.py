"""Where reports go: the user's state folder, never over an earlier report."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.reports import new_report_paths, reports_dir, safe_name


def test_reports_go_to_the_state_folder_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert reports_dir() == tmp_path / "state" / "broadcaster" / "reports"
    assert reports_dir(tmp_path / "mine") == tmp_path / "mine"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # ignored, as the XDG rule says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert reports_dir() == tmp_path / "home" / ".local" / "state" / "broadcaster" / "reports"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert reports_dir() == tmp_path / "home" / ".local" / "state" / "broadcaster" / "reports"


def test_a_second_report_of_the_same_incident_gets_new_files(tmp_path: Path):
    folder = tmp_path / "reports"
    first = new_report_paths(folder, "incident-E:1")
    second = new_report_paths(folder, "incident-E:1")
    third = new_report_paths(folder, "incident-E:1")
    assert len({*first, *second, *third}) == 6
    for json_path, html_path in (first, second, third):
        assert json_path.name.startswith("incident-E_1-") and json_path.suffix == ".json"
        assert html_path.with_suffix(".json") == json_path
        assert json_path.exists()  # reserved at once
    assert safe_name("FW-1:retraction") == "FW-1_retraction"
