"""`broadcaster report INCIDENT`: the after-action report of a whole incident.

What an inquiry asks, from the store's record: who triggered each stage (source, trigger
id, issue time), who released it and when (or the timeout), how long the confirmation
took, what went to which channel and when (the exact text, state, attempts and the
provider's answer), the delay from the trigger's arrival to each delivery, retractions
with their corrections and deletions, refused triggers of the incident, and the whole
timeline. `build_report` turns the record into JSON-ready data, `render_html` into one
self-contained HTML file (no outside resources: it must open from an e-mail attachment).

A drill is marked EXERCISE / ÜBUNG on every page and stage, and a delivery counts as
sent only when a provider accepted it: a dry run is never called sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from broadcaster.models import Alert, AuditEntry, Delivery
from broadcaster.store import open_store
from broadcaster.store.base import Store

FORMAT = "broadcaster after-action report 1"
# Delivery conclusions written by the dispatcher (dispatch.py `conclude`).
CONCLUSIONS = frozenset({"delivered", "failed", "dry_run", "retracted"})


@dataclass(frozen=True)
class AlertRecord:
    alert: Alert
    deliveries: list[Delivery]
    trail: list[AuditEntry]


@dataclass(frozen=True)
class IncidentRecord:
    """Everything the store holds about an incident: its alerts oldest first, the
    corrections (`<id>:retraction`) among them, and refusals of its trigger ids."""

    incident: str
    alerts: list[AlertRecord]
    refusals: list[AuditEntry] = field(default_factory=list)
    scenario_names: dict[str, str] = field(default_factory=dict)


async def read_incident(url: str, base: Path, incident: str) -> IncidentRecord | None:
    """The incident's record from the store; None when no alert belongs to it."""
    store = open_store(url, base)
    await store.open()
    try:
        return await incident_record(store, incident)
    finally:
        await store.close()


async def incident_record(store: Store, incident: str) -> IncidentRecord | None:
    """The incident's record from an open store (the daemon's, for the console)."""
    alerts = await store.incident_alerts(incident)
    if not alerts:
        return None
    records = [
        AlertRecord(a, await store.get_deliveries(a.id), await store.audit_trail(a.id))
        for a in alerts
    ]
    ids = {incident} | {a.id for a in alerts}
    refusals = [
        e
        for e in await store.audit_trail(None)
        if e.event == "refused"
        and (e.detail.get("trigger_id") in ids or e.detail.get("incident") == incident)
    ]
    return IncidentRecord(incident, records, refusals)


# -- the data ---------------------------------------------------------------------------


def build_report(record: IncidentRecord, generated_at: datetime) -> dict[str, Any]:
    """The report as JSON-ready data; times in the zone of the incident's first trigger
    (the fire brigade's), as ISO 8601 with their offset."""
    first = record.alerts[0].alert
    zone = first.issued_at.tzinfo
    alerts = [_alert(r, record, zone) for r in record.alerts]
    deliveries = [d for a in alerts for d in a["deliveries"]]
    modes = {r.alert.mode for r in record.alerts}
    channels: dict[str, dict[str, Any]] = {}
    for a in alerts:
        for d in a["deliveries"]:
            row = channels.setdefault(d["channel"], {"type": d["type"], "by_alert": {}})
            row["by_alert"][a["id"]] = {
                "state": d["state"],
                "sent": d["sent"],
                "delivered_at": d["delivered_at"],
                "delay_seconds": d["delay_seconds"],
            }
    entries = [e for r in record.alerts for e in r.trail] + list(record.refusals)
    timeline = [
        {
            "at": _iso(e.at, zone),
            "alert_id": e.alert_id,
            "actor": e.actor,
            "event": e.event,
            "text": describe(e, zone),
            "detail": e.detail,
        }
        for e in sorted(entries, key=lambda e: e.at)
    ]
    return {
        "format": FORMAT,
        "incident": record.incident,
        "generated_at": _iso(generated_at, zone),
        "time_zone": _zone_name(first.issued_at),
        "scenario": first.scenario,
        "scenario_name": record.scenario_names.get(first.scenario, first.scenario),
        "mode": modes.pop() if len(modes) == 1 else "mixed",
        "exercise": any(r.alert.mode == "drill" for r in record.alerts),
        "summary": {
            "first_trigger_received_at": _iso(first.created_at, zone),
            "last_event_at": timeline[-1]["at"] if timeline else None,
            "stages": [a["stage"] for a in alerts if a["kind"] == "alert"],
            "alerts": sum(a["kind"] == "alert" for a in alerts),
            "corrections": sum(a["kind"] == "correction" for a in alerts),
            "channels": sorted(channels),
            "deliveries": len(deliveries),
            "sent": sum(d["sent"] for d in deliveries),
            "dry_run": sum(d["state"] == "dry_run" for d in deliveries),
            "failed": sum(d["state"] == "failed" for d in deliveries),
            "refusals": len(record.refusals),
        },
        "alerts": alerts,
        "channels": channels,
        "refusals": [
            {
                "at": _iso(e.at, zone),
                "source": e.actor,
                "trigger_id": e.detail.get("trigger_id"),
                "error": e.detail.get("error"),
                "detail": e.detail.get("detail"),
            }
            for e in record.refusals
        ],
        "timeline": timeline,
    }


def _alert(record: AlertRecord, incident: IncidentRecord, zone: tzinfo | None) -> dict[str, Any]:
    a, trail = record.alert, record.trail
    received = _first(trail, "trigger_received")
    created = _first(trail, "correction_created")
    if a.retracts is not None:
        source = created.actor if created else (a.retracted_by or "system")
    else:
        source = received.actor if received else "unknown"
    correction = next(
        (r.alert.id for r in incident.alerts if r.alert.retracts == a.id and a.retracts is None),
        None,
    )
    return {
        "id": a.id,
        "kind": "correction" if a.retracts is not None else "alert",
        "retracts": a.retracts,
        "stage": a.stage,
        "mode": a.mode,
        "msg_type": a.msg_type,
        "state": a.state,
        "trigger": {
            "id": a.id,
            "source": source,
            "issued_at": _iso(a.issued_at, zone),
            "received_at": _iso(a.created_at, zone),
            "params": a.params,
        },
        "confirmation": _confirmation(a, trail, zone),
        "deliveries": [_delivery(a, d, trail, zone) for d in record.deliveries],
        "retraction": _retraction(a, trail, correction, zone),
        "built_in_text": created.detail.get("built_in_text") if created else None,
    }


def _confirmation(a: Alert, trail: list[AuditEntry], zone: tzinfo | None) -> dict[str, Any]:
    requested = _first(trail, "confirmation_requested")
    released = _first(trail, "released")
    rejected = _first(trail, "rejected")
    timeout = _first(trail, "confirmation_timeout")
    asked_at = a.confirmation_requested_at or (requested.at if requested else None)
    released_at = a.released_at or (released.at if released else None)
    if released is not None:
        decision = "released"
    elif rejected is not None:
        decision = "rejected"
    elif a.state == "expired":
        decision = "expired"
    elif a.state == "retracted":
        decision = "cancelled"
    else:
        decision = "waiting"
    decided_at = {
        "released": released_at,
        "rejected": rejected.at if rejected else None,
        "expired": timeout.at if timeout else None,
    }.get(decision)
    return {
        "required": requested is not None,
        "mode": requested.detail.get("mode") if requested else "none",
        "timeout_seconds": requested.detail.get("timeout_seconds") if requested else None,
        "on_timeout": requested.detail.get("on_timeout") if requested else None,
        "requested_at": _iso(asked_at, zone),
        "officers_asked": [
            {
                "officer": e.detail.get("officer"),
                "at": _iso(e.at, zone),
                "channels": e.detail.get("channels", []),
            }
            for e in _all(trail, "officer_asked")
        ],
        "notifications_failed": [
            {"officer": e.detail.get("officer"), "channel": e.detail.get("channel")}
            for e in _all(trail, "officer_notification_failed")
        ],
        "links_opened": [
            {"officer": e.actor, "at": _iso(e.at, zone)} for e in _all(trail, "link_opened")
        ],
        "release_requests": [
            {"by": e.actor, "at": _iso(e.at, zone), "release_at": e.detail.get("release_at")}
            for e in _all(trail, "release_requested")
        ],
        "undone": [{"by": e.actor, "at": _iso(e.at, zone)} for e in _all(trail, "release_undone")],
        "decision": decision,
        "decided_by": {
            "released": released.actor if released else None,
            "rejected": rejected.actor if rejected else None,
            "expired": "timeout",
        }.get(decision),
        "how": _how(a, decision, released, requested),
        "released_at": _iso(released_at, zone),
        "wait_seconds": _seconds(asked_at, decided_at) if asked_at and decided_at else None,
    }


def _how(a: Alert, decision: str, released: AuditEntry | None, requested: AuditEntry | None) -> str:
    if decision != "released" or released is None:
        return {
            "rejected": "rejected by the duty officer: nothing was sent",
            "expired": "nobody released it within the confirmation timeout: nothing was sent",
            "cancelled": "retracted before it was released: nothing was sent",
        }.get(decision, "still waiting for the duty officer")
    actor = released.actor
    if a.retracts is not None:
        return f"sent at once (a retraction needs no confirmation), retracted by {actor}"
    if actor == "timeout":
        mode = requested.detail.get("mode") if requested else None
        why = "confirmation mode auto" if mode == "auto" else "on_timeout: send"
        return f"released automatically when the confirmation timeout passed ({why})"
    if requested is None:
        return "released at once: the playbook asks for no confirmation"
    if actor.startswith("drill"):
        return "released automatically (drill)"
    return f"released by the duty officer {actor}"


def _delivery(
    a: Alert, d: Delivery, trail: list[AuditEntry], zone: tzinfo | None
) -> dict[str, Any]:
    mine = [e for e in trail if e.detail.get("channel") == d.channel_id]
    conclusion = next(
        (e for e in reversed(mine) if e.event in CONCLUSIONS and "deleted" not in e.detail), None
    )
    taken_down = next((e for e in mine if e.event == "retracted" and "deleted" in e.detail), None)
    sent = d.delivered_at is not None  # only a provider's acceptance sets it
    delay = _seconds(a.created_at, d.delivered_at) if d.delivered_at else None
    return {
        "channel": d.channel_id,
        "type": d.channel_type,
        "language": d.language,
        "variant": d.variant,
        "title": d.title,
        "text": d.text,
        "state": d.state,
        "sent": sent,
        "outcome": _outcome(a, d, sent),
        "attempts": d.attempts,
        "remote_id": d.remote_id,
        "url": d.url,
        "error": d.error,
        "recipients": d.recipients.model_dump() if d.recipients else None,
        "delivered_at": _iso(d.delivered_at, zone),
        "delay_seconds": delay,
        "retries": [
            {
                "at": _iso(e.at, zone),
                "attempt": e.detail.get("attempt"),
                "error": e.detail.get("error"),
                "wait_seconds": e.detail.get("wait_seconds"),
            }
            for e in mine
            if e.event == "retry_scheduled"
        ],
        "answer": (
            {"at": _iso(conclusion.at, zone), "event": conclusion.event, **conclusion.detail}
            if conclusion
            else None
        ),
        "thread_fallback": [e.detail.get("error") for e in mine if e.event == "thread_fallback"],
        "taken_down": (
            {
                "at": _iso(taken_down.at, zone),
                "deleted": bool(taken_down.detail.get("deleted")),
                "correction_remote_id": taken_down.detail.get("correction"),
            }
            if taken_down
            else None
        ),
        "delete_failed": [e.detail.get("error") for e in mine if e.event == "delete_failed"],
    }


def _outcome(a: Alert, d: Delivery, sent: bool) -> str:
    exercise = " (exercise text)" if a.mode == "drill" else ""
    if d.state == "delivered":
        return f"sent{exercise}"
    if d.state == "dry_run":
        return "not sent: dry run, no channel was contacted"
    if d.state == "failed":
        return f"FAILED: {d.error or 'no answer'}"
    if d.state == "retracted":
        if sent:
            return f"sent{exercise}, then retracted"
        return f"not sent: {d.error or 'retracted before sending'}"
    if d.state == "sending":
        return "on its way when the report was made: outcome not known"
    return "not sent"


def _retraction(
    a: Alert, trail: list[AuditEntry], correction: str | None, zone: tzinfo | None
) -> dict[str, Any] | None:
    requested = _first(trail, "retraction_requested")
    if a.state != "retracted" or requested is None:
        return None
    return {
        "by": requested.actor,
        "at": _iso(requested.at, zone),
        "reason": a.retraction_reason,
        "state_before": requested.detail.get("state_before"),
        "correction": correction,
    }


def _first(trail: list[AuditEntry], event: str) -> AuditEntry | None:
    return next((e for e in trail if e.event == event), None)


def _all(trail: list[AuditEntry], event: str) -> list[AuditEntry]:
    return [e for e in trail if e.event == event]


def _iso(moment: datetime | None, zone: tzinfo | None) -> str | None:
    return moment.astimezone(zone).isoformat(timespec="milliseconds") if moment else None


def _seconds(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)


def _zone_name(moment: datetime) -> str:
    offset = moment.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"


def describe(e: AuditEntry, zone: tzinfo | None = None) -> str:
    """One audit entry as a sentence for the timeline (times in `zone`)."""
    d = e.detail
    channel = d.get("channel")
    if e.event == "trigger_received":
        return f"trigger received from {e.actor}: stage {d.get('stage')}, {d.get('mode')}"
    if e.event == "refused":
        trigger = d.get("trigger_id") or "(no id)"
        return f"trigger {trigger} refused: {d.get('error')}: {d.get('detail')}"
    if e.event == "confirmation_requested":
        return f"confirmation requested (mode {d.get('mode')})"
    if e.event == "officer_asked":
        return f"duty officer {d.get('officer')} asked via {', '.join(d.get('channels', []))}"
    if e.event == "officer_notification_failed":
        return f"the notice to {d.get('officer')} via {d.get('channel')} failed"
    if e.event == "link_opened":
        return f"confirm link opened by {e.actor}"
    if e.event == "wrong_pin":
        return f"wrong PIN on {e.actor}'s link ({d.get('failures')} so far)"
    if e.event == "link_locked":
        return f"{e.actor}'s link locked after wrong PINs"
    if e.event == "release_requested":
        at = d.get("release_at")
        if isinstance(at, str):
            at = f"{datetime.fromisoformat(at).astimezone(zone):%H:%M:%S}"
        return f"release by {e.actor}, going out at {at} unless stopped"
    if e.event == "release_undone":
        return f"release stopped by {e.actor} within the undo window"
    if e.event == "released":
        by = {"system": "at once, no confirmation needed", "timeout": "by the timeout"}
        return f"released {by.get(e.actor, 'by ' + e.actor)}"
    if e.event == "rejected":
        return f"rejected by {e.actor}"
    if e.event == "confirmation_timeout":
        return f"confirmation timeout passed: {d.get('then')}"
    if e.event == "expired":
        return "expired unreleased: nothing was sent"
    if e.event == "retry_scheduled":
        return (
            f"{channel}: attempt {d.get('attempt')} failed ({d.get('error')}), "
            f"retry in {d.get('wait_seconds')} s"
        )
    if e.event == "delivered" and channel:
        where = " ".join(str(x) for x in (d.get("remote_id"), d.get("url")) if x)
        return f"{channel}: delivered on attempt {d.get('attempts')}" + (
            f", {where}" if where else ""
        )
    if e.event == "dry_run" and channel:
        return f"{channel}: dry run, not sent"
    if e.event == "failed" and channel:
        return f"{channel}: failed after {d.get('attempts')} attempt(s): {d.get('error')}"
    if e.event == "retracted" and channel:
        if "deleted" in d:
            deleted = "deleted there" if d.get("deleted") else "could not be deleted there"
            return f"{channel}: original retracted, {deleted}"
        return f"{channel}: not sent, {d.get('error') or 'retracted'}"
    if e.event == "delete_failed":
        return f"{channel}: deleting the original failed: {d.get('error')}"
    if e.event == "thread_fallback":
        return f"{channel}: sent on its own, the post to reply under is gone"
    if e.event in ("sent", "partially_failed", "failed"):
        return f"alert {e.event.replace('_', ' ')}"
    if e.event == "retraction_requested":
        return f"retraction requested by {e.actor}: {d.get('reason')}"
    if e.event == "correction_created":
        return f"correction of {d.get('retracts')} created for {', '.join(d.get('channels', []))}"
    if not d:
        return e.event.replace("_", " ")
    rest = ", ".join(f"{k} {v}" for k, v in d.items())
    return f"{e.event.replace('_', ' ')}: {rest}"


# -- the files --------------------------------------------------------------------------


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")


def _clock(value: str | None) -> str:
    if not value:
        return "-"
    moment = datetime.fromisoformat(value)
    return f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def _web_link(url: str | None) -> str | None:
    """Only http(s) becomes a link: a provider's answer is not trusted to be one."""
    return url if url and url.startswith(("https://", "http://")) else None


PAGES = Environment(
    loader=PackageLoader("broadcaster.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
PAGES.filters.update(when=_when, clock=_clock, duration=_duration, web_link=_web_link)


def render_html(report: dict[str, Any]) -> str:
    """One file, every value escaped (autoescape), styles inline, no script."""
    return PAGES.get_template("incident_report.html.j2").render(r=report)
