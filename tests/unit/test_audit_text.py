"""The audit trail laid out for a person at 80 columns, and as the API shows it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from rich.console import Console

from broadcaster.audit import entries_json, local_time, public_entry, trail_text
from broadcaster.models import AuditEntry

LONG_ID = "FW-DUS-2026-000123-" + "x" * 45  # 64 characters, the longest an id may be
AT = datetime(2026, 11, 23, 9, 15, 0, 123456, tzinfo=UTC)


def test_a_block_per_event_keeps_every_id_whole_at_80_columns():
    entries = [
        AuditEntry(
            at=AT,
            alert_id=LONG_ID,
            event="trigger_received",
            actor="mqtt",
            detail={"stage": "warning", "mode": "live"},
        ),
        AuditEntry(
            at=AT,
            alert_id=f"{LONG_ID}:retraction",
            event="delivered",
            detail={"channel": "website", "remote_id": "r-1", "recipients": {"total": 2}},
        ),
    ]
    console = Console(width=80, record=True, soft_wrap=True)
    console.print(trail_text(entries, show_alert=True))
    text = console.export_text()
    lines = text.splitlines()
    assert f"  alert {LONG_ID}" in lines
    i = lines.index("  alert")  # too long to share a line with its label
    assert lines[i + 1] == f"  {LONG_ID}:retraction"
    assert all(len(line) <= 80 for line in lines)
    assert '  recipients: {"total": 2}' in lines
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.123 \S+  trigger_received  by mqtt$", lines[0]
    )
    assert lines.count("") == 1  # one blank line between the two blocks


def test_times_name_their_zone_and_the_api_shape():
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.123 \S+", local_time(AT))
    entry = AuditEntry(at=AT, alert_id="FW-1", event="released", actor="A. Schmidt")
    assert public_entry(entry) == {
        "at": "2026-11-23T09:15:00.123456+00:00",
        "actor": "A. Schmidt",
        "event": "released",
        "detail": {},
    }
    assert '"alert_id": "FW-1"' in entries_json([entry])
