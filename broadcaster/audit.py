"""`broadcaster audit` and GET /api/alerts/{id}/audit: the audit trail, for a person.

The store keeps every action as an append-only entry (who, what, when, with what
detail). This reads one alert's entries, an incident's (every stage and its corrections,
merged in time order), or the entries of no alert (refused input, the daemon's own
events), and lays them out one block per event: at 80 columns nothing is cut, so an id
can be copied into `broadcaster retract` or `broadcaster report`.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text

from broadcaster.models import AuditEntry
from broadcaster.store import open_store

WIDTH = 80  # the narrowest terminal the layout is made for


class NotFound(LookupError):
    """No such alert or incident in the store."""


async def read_trail(
    url: str, base: Path, *, alert_id: str | None = None, incident: str | None = None
) -> list[AuditEntry]:
    """One alert's entries, an incident's (in time order), or (neither) those of no
    alert, oldest first; NotFound for an alert or incident the store does not know."""
    store = open_store(url, base)
    await store.open()
    try:
        if incident is not None:
            alerts = await store.incident_alerts(incident)
            if not alerts:
                raise NotFound(f"no incident {incident!r} (no alert belongs to it)")
            entries = [e for a in alerts for e in await store.audit_trail(a.id)]
            # Stable: entries of the same moment keep their alert's order.
            return sorted(entries, key=lambda e: e.at)
        if alert_id is not None and await store.get_alert(alert_id) is None:
            raise NotFound(f"no alert {alert_id!r}")
        return await store.audit_trail(alert_id)
    finally:
        await store.close()


async def read_everything(url: str, base: Path) -> list[AuditEntry]:
    """The whole trail, every alert's and what belongs to no alert, oldest first."""
    store = open_store(url, base)
    await store.open()
    try:
        return await store.audit_all()
    finally:
        await store.close()


def json_lines(entries: list[AuditEntry]) -> str:
    """One entry per line, each the whole AuditEntry as JSON (`broadcaster audit --export`,
    for the archive: any line can be read on its own)."""
    return "".join(f"{entry.model_dump_json()}\n" for entry in entries)


def public_entry(entry: AuditEntry) -> dict[str, Any]:
    """An entry as GET /api/alerts/{id}/audit shows it (contract section 8)."""
    return {
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "event": entry.event,
        "detail": entry.detail,
    }


def entries_json(entries: list[AuditEntry]) -> str:
    return json.dumps(
        [{"alert_id": e.alert_id, **public_entry(e)} for e in entries],
        ensure_ascii=False,
        indent=2,
    )


def local_time(moment: datetime) -> str:
    """In this machine's zone, with the zone named: an inquiry compares times from
    several sources. Milliseconds, because many events share a second."""
    local = moment.astimezone()
    zone = local.strftime("%Z") or local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {zone}"


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def entry_block(entry: AuditEntry, *, show_alert: bool) -> Text:
    """One event: time, event and actor on the first line, then the alert (when the
    listing mixes alerts) and each detail on a line of its own, indented."""
    block = Text()
    block.append(local_time(entry.at), style="dim")
    block.append("  ")
    block.append(entry.event, style="bold")
    block.append(f"  by {entry.actor}")
    if show_alert:
        alert_id = entry.alert_id or "-"
        # The longest id with ":retraction" is 75 characters: then on a line of its own.
        block.append("\n  alert " if len(alert_id) <= WIDTH - 8 else "\n  alert\n  ")
        block.append(alert_id, style="cyan")
    for key, value in entry.detail.items():
        block.append(f"\n  {key}: ", style="dim")
        block.append(_value(value))
    return block


def trail_text(entries: list[AuditEntry], *, show_alert: bool) -> Text:
    text = Text()
    for i, entry in enumerate(entries):
        if i:
            text.append("\n\n")
        text.append_text(entry_block(entry, show_alert=show_alert))
    return text
