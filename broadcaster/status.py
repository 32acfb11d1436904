"""`broadcaster status`: alerts and their deliveries, read from the store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from broadcaster.models import Alert, ChannelState, Delivery
from broadcaster.refusals import recent_refusals
from broadcaster.store import open_store

STATE_STYLE = {
    "sent": "green",
    "delivered": "green",
    "dry_run": "cyan",
    "failed": "bold red",
    "partially_failed": "red",
    "awaiting_confirmation": "yellow",
    "sending": "yellow",
    "pending": "yellow",
    "retracted": "magenta",
    "rejected": "magenta",
    "expired": "magenta",
    "open": "bold red",
    "half_open": "yellow",
}


async def read_status(
    url: str, base: Path, alert_id: str | None, limit: int
) -> tuple[list[tuple[Alert, list[Delivery]]], dict[str, ChannelState]]:
    """Alerts with their deliveries, and the channels' circuits."""
    store = open_store(url, base)
    await store.open()
    try:
        if alert_id is not None:
            alert = await store.get_alert(alert_id)
            alerts = [alert] if alert else []
        else:
            alerts = await store.list_alerts(limit)
        return [(a, await store.get_deliveries(a.id)) for a in alerts], await store.channel_states()
    finally:
        await store.close()


def circuits_table(states: dict[str, ChannelState]) -> Table | None:
    """Channels whose circuit is not closed (paused after failures in a row), if any."""
    paused = {cid: s for cid, s in states.items() if s.circuit != "closed"}
    if not paused:
        return None
    table = Table(title="Channels paused by their circuit breaker")
    for column in ("channel", "circuit", "failures in a row", "since", "seen by"):
        table.add_column(column)
    for cid, s in paused.items():
        since = s.changed_at.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        table.add_row(cid, _state(s.circuit), str(s.failures), since, s.by)
    return table


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


def alerts_table(alerts: list[tuple[Alert, list[Delivery]]]) -> Table:
    table = Table(title="Alerts (newest first)")
    for column in ("id", "scenario", "stage", "mode", "state", "created", "deliveries"):
        table.add_column(column)
    for alert, deliveries in alerts:
        done = sum(d.state in ("delivered", "dry_run") for d in deliveries)
        failed = sum(d.state == "failed" for d in deliveries)
        summary = f"{done}/{len(deliveries)} done" + (f", {failed} failed" if failed else "")
        table.add_row(
            alert.id,
            alert.scenario,
            alert.stage,
            "[bold]DRILL[/]" if alert.mode == "drill" else "live",
            _state(alert.state),
            alert.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            summary,
        )
    return table


def deliveries_table(alert: Alert, deliveries: list[Delivery]) -> Table:
    confirmed = f", confirmed by {alert.confirmed_by}" if alert.confirmed_by else ""
    table = Table(
        title=f"{alert.id}: {alert.scenario}/{alert.stage} ({alert.mode}), {alert.state}{confirmed}"
    )
    for column in ("channel", "type", "state", "attempts", "remote id / url", "error", "at"):
        table.add_column(column)
    for d in deliveries:
        where = " ".join(x for x in (d.remote_id, d.url) if x)
        if d.recipients is not None:
            where += f" ({d.recipients.delivered}/{d.recipients.total} recipients)"
        at = d.delivered_at.astimezone().strftime("%H:%M:%S") if d.delivered_at else ""
        table.add_row(
            d.channel_id, d.channel_type, _state(d.state), str(d.attempts), where, d.error or "", at
        )
    return table


async def read_refusals(url: str, base: Path, limit: int) -> list[dict[str, Any]]:
    store = open_store(url, base)
    await store.open()
    try:
        return await recent_refusals(store, limit)
    finally:
        await store.close()


def refusals_text(refusals: list[dict[str, Any]]) -> Text:
    """One block per refused input, so that ids and codes are never cut at 80 columns."""
    out = Text("Refused input (newest first)\n", style="bold")
    if not refusals:
        out.append("none\n")
    for r in refusals:
        received = datetime.fromisoformat(r["received_at"]).astimezone()
        mode = str(r.get("mode") or "mode unreadable")
        about = ", ".join(
            x for x in (r.get("scenario"), mode.upper(), f"from {r.get('source', '?')}") if x
        )
        out.append(f"{received:%Y-%m-%d %H:%M:%S %Z}  ")
        out.append(str(r.get("trigger_id") or "(id unreadable)"), style="bold")
        out.append(f"  ({about})\n  ")
        out.append(str(r["error"]), style="bold red")
        out.append(f": {r['detail']}\n")
    return out
