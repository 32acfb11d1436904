"""`broadcaster status`: alerts and their deliveries, read from the store."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from broadcaster.models import Alert, ChannelState, Delivery
from broadcaster.refusals import recent_refusals
from broadcaster.store import open_store

# What the operator's views look at (the board, the Channels screen, `status --watch`).
RECENT = timedelta(hours=12)  # a finished incident stays in view this long
SCAN_LIMIT = 200  # newest alerts looked at: far more than a day of incidents

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
        table.add_column(column, overflow="fold")  # never an ellipsis in an id
    for cid, s in paused.items():
        since = local_time(s.changed_at)
        table.add_row(cid, _state(s.circuit), str(s.failures), since, s.by)
    return table


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


def local_time(moment: datetime, *, with_date: bool = True) -> str:
    """This machine's local time, always with its zone (`CET`, else the UTC offset)."""
    local = moment.astimezone()
    zone = local.strftime("%Z") or local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S") + f" {zone}"


def mode_badge(mode: str) -> str:
    """LIVE and DRILL alike in bold capitals: neither may be overlooked."""
    return "[bold red]LIVE[/]" if mode == "live" else "[bold yellow]DRILL[/]"


def went_out(delivery: Delivery) -> bool:
    """Delivered, or delivered and then retracted (deleted or corrected) on its channel."""
    return delivery.state == "delivered" or (
        delivery.state == "retracted" and delivery.delivered_at is not None
    )


def deliveries_summary(alert: Alert, deliveries: list[Delivery]) -> str:
    """E.g. `3/3 sent`, `2/3 sent, 1 failed`, `3/3 sent, retracted`, `3 dry run`."""
    total = len(deliveries)
    sent = sum(went_out(d) for d in deliveries)
    dry = sum(d.state == "dry_run" for d in deliveries)
    failed = sum(d.state == "failed" for d in deliveries)
    parts = [f"{sent}/{total} sent"] if sent or not dry else []
    parts += [f"{dry}/{total} dry run (not sent)"] if dry else []
    parts += [f"{failed} failed"] if failed else []
    parts += ["retracted"] if alert.state == "retracted" else []
    return ", ".join(parts) if total else "no deliveries"


def who(alert: Alert) -> str:
    """Who decided: the officer who confirmed, and who retracted; a correction is no
    confirmed alert but the retraction of another."""
    if alert.retracts is not None:
        by = f", retracted by {alert.retracted_by}" if alert.retracted_by else ""
        return f"correction of {alert.retracts}{by}"
    parts = [f"confirmed by {alert.confirmed_by}"] if alert.confirmed_by else []
    if alert.state == "retracted" and alert.retracted_by:
        parts.append(f"retracted by {alert.retracted_by}")
    return ", ".join(parts)


def _alert_lines(alert: Alert, deliveries: list[Delivery]) -> Text:
    """The id alone on its line, never cut or wrapped by us, so it can be copied into
    `broadcaster retract`; the rest indented below it."""
    lines = Text(alert.id, style="bold")
    lines.append("\n  ")
    lines.append_text(Text.from_markup(mode_badge(alert.mode)))
    lines.append(f"  {alert.scenario}/{alert.stage}  ")
    lines.append_text(Text.from_markup(_state(alert.state)))
    lines.append(f"  {local_time(alert.created_at)}  {deliveries_summary(alert, deliveries)}")
    if details := who(alert):
        lines.append(f"\n  {details}")
    if alert.retraction_reason and alert.retracts is None:
        lines.append(f"\n  reason: {alert.retraction_reason}")
    for d in open_tasks(deliveries):
        assert d.manual_task is not None
        lines.append(f"\n  TO DO BY HAND on {d.channel_id}: {d.manual_task.task}", style="bold red")
    return lines


def open_tasks(deliveries: list[Delivery]) -> list[Delivery]:
    """Deliveries with a manual task nobody has marked done."""
    return [d for d in deliveries if d.manual_task is not None and d.manual_task.done_at is None]


def alerts_list(alerts: list[tuple[Alert, list[Delivery]]]) -> Group:
    if not alerts:
        return Group(Text("no alerts yet"))
    items: list[Text] = [Text("Alerts (newest first)", style="bold underline")]
    items += [_alert_lines(alert, deliveries) for alert, deliveries in alerts]
    return Group(*items)


def alert_detail(alert: Alert, deliveries: list[Delivery]) -> Group:
    """The alert, then one entry per delivery: ids and links on lines of their own,
    whole, however narrow the terminal."""
    items: list[Text] = [_alert_lines(alert, deliveries), Text("\nDeliveries", style="bold")]
    for d in deliveries:
        entry = Text(f"  {d.channel_id} ({d.channel_type}, {d.language}, {d.variant})  ")
        entry.append_text(Text.from_markup(_state(d.state)))
        entry.append(f"  {d.attempts} attempt(s)")
        if d.delivered_at:
            entry.append(f"  {local_time(d.delivered_at, with_date=False)}")
        if d.recipients is not None:
            entry.append(f"  {d.recipients.delivered}/{d.recipients.total} recipients")
        for line in (d.remote_id, d.url):
            if line:
                entry.append(f"\n    {line}")
        if d.error:
            entry.append(f"\n    error: {d.error}", style="red")
        if (note := d.public().get("detail")) is not None:
            entry.append(f"\n    {note}")
        if (task := d.manual_task) is not None:
            if task.done_at is None:
                entry.append(f"\n    TO DO BY HAND: {task.task}", style="bold red")
            else:
                done = local_time(task.done_at)
                entry.append(f"\n    done by hand ({task.done_by}, {done}): {task.task}")
        items.append(entry)
    if not deliveries:
        items.append(Text("  none"))
    return Group(*items)


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
