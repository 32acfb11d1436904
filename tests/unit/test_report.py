"""The after-action report from a record built by hand: what it claims, in JSON and HTML."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from broadcaster.models import Alert, AuditEntry, Delivery, Receipt
from broadcaster.report import (
    AlertRecord,
    IncidentRecord,
    build_report,
    describe,
    read_incident,
    render_html,
)
from broadcaster.store.sqlite import SqliteStore

T0 = datetime(2026, 11, 23, 9, 15, 0, tzinfo=UTC)
CET = timezone(timedelta(hours=1))
SCRIPT = "<script>alert(1)</script>"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def alert(alert_id: str = "FW-1", **changes: object) -> Alert:
    fields: dict[str, object] = {
        "id": alert_id,
        "incident": "E-1",
        "scenario": "major_fire",
        "stage": "warning",
        "mode": "live",
        "state": "sent",
        "issued_at": T0.astimezone(CET),
        "created_at": at(0),
        "params": {"location": f"Ackerstraße {SCRIPT}", "district": "Flingern"},
        "confirmation_requested_at": at(0.1),
        "released_at": at(30.1),
        "confirmed_by": "A. Schmidt",
    }
    fields.update(changes)
    return Alert.model_validate(fields)


def delivery(channel: str, state: str, **changes: object) -> Delivery:
    fields: dict[str, object] = {
        "alert_id": "FW-1",
        "channel_id": channel,
        "channel_type": "webhook",
        "language": "de",
        "variant": "short",
        "title": "Warnung",
        "text": f"Großbrand {SCRIPT}",
        "state": state,
    }
    fields.update(changes)
    return Delivery.model_validate(fields)


def entry(seconds: float, event: str, actor: str = "system", **detail: object) -> AuditEntry:
    return AuditEntry(at=at(seconds), alert_id="FW-1", event=event, actor=actor, detail=detail)


def released_trail() -> list[AuditEntry]:
    return [
        entry(0.01, "trigger_received", "mqtt", stage="warning", mode="live"),
        entry(0.1, "confirmation_requested", mode="required", timeout_seconds=600.0),
        entry(0.2, "officer_asked", officer="A. Schmidt", channels=["officer_sms"]),
        entry(12, "link_opened", "A. Schmidt", officer="A. Schmidt"),
        entry(25.1, "release_requested", "A. Schmidt", release_at=at(30.1).isoformat()),
        entry(30.1, "released", "A. Schmidt"),
        entry(
            31, "retry_scheduled", channel="website", attempt=1, error="HTTP 503", wait_seconds=1
        ),
        entry(
            32.5, "delivered", channel="website", attempts=2, remote_id="r-1", url="javascript:x"
        ),
        entry(32.6, "dry_run", channel="mastodon", attempts=0),
        entry(32.7, "sent", deliveries=2),
    ]


def one(a: Alert, deliveries: list[Delivery], trail: list[AuditEntry]) -> IncidentRecord:
    return IncidentRecord("E-1", [AlertRecord(a, deliveries, trail)])


def test_a_released_alert_names_the_officer_the_wait_the_delay_and_what_was_not_sent():
    website = delivery(
        "website",
        "delivered",
        attempts=2,
        remote_id="r-1",
        url="javascript:x",
        delivered_at=at(32.5),
        receipt=Receipt(remote_id="r-1"),
    )
    mastodon = delivery("mastodon", "dry_run", channel_type="mastodon")
    report = build_report(one(alert(), [website, mastodon], released_trail()), at(100))
    [a] = report["alerts"]
    c = a["confirmation"]
    assert c["decided_by"] == "A. Schmidt"
    assert c["how"] == "released by the duty officer A. Schmidt"
    assert c["wait_seconds"] == 30.0
    assert [o["officer"] for o in c["links_opened"]] == ["A. Schmidt"]
    assert a["trigger"]["source"] == "mqtt"
    assert a["trigger"]["issued_at"].endswith("+01:00")
    sent, dry = a["deliveries"]
    assert sent["sent"] is True
    assert sent["delay_seconds"] == 32.5
    assert sent["attempts"] == 2
    assert sent["retries"] == [
        {
            "at": "2026-11-23T10:15:31.000+01:00",
            "attempt": 1,
            "error": "HTTP 503",
            "wait_seconds": 1,
        }
    ]
    assert sent["answer"]["remote_id"] == "r-1"
    assert sent["answer"]["attempts"] == 2
    assert dry["sent"] is False
    assert dry["delay_seconds"] is None
    assert dry["delivered_at"] is None
    assert dry["outcome"] == "not sent: dry run, no channel was contacted"
    assert report["summary"] == {
        "first_trigger_received_at": "2026-11-23T10:15:00.000+01:00",
        "last_event_at": "2026-11-23T10:15:32.700+01:00",
        "stages": ["warning"],
        "alerts": 1,
        "corrections": 0,
        "channels": ["mastodon", "website"],
        "deliveries": 2,
        "sent": 1,
        "dry_run": 1,
        "failed": 0,
        "refusals": 0,
    }
    assert report["time_zone"] == "UTC+01:00"
    assert report["exercise"] is False

    html = render_html(report)
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html  # a provider's answer is shown, not linked
    assert re.search(r"<(script|link|img|iframe)\b", html) is None  # nothing to load
    assert '<html lang="en"' in html
    assert 'lang="de"' in html
    assert "EXERCISE" not in html
    assert "DRY RUN" not in html
    assert "10:15:12.000" in html  # the link opened, in the trigger's zone


def test_a_drill_all_dry_run_is_marked_as_an_exercise_and_never_called_sent():
    drill = alert(mode="drill", confirmed_by="drill (auto-released)")
    trail = [
        entry(0.01, "trigger_received", "mqtt", stage="warning", mode="drill"),
        entry(0.1, "confirmation_requested", mode="required", drill="auto-released"),
        entry(0.2, "released", "drill (auto-released)"),
        entry(0.3, "dry_run", channel="website", attempts=0),
    ]
    report = build_report(one(drill, [delivery("website", "dry_run")], trail), at(5))
    assert report["exercise"] is True
    assert report["mode"] == "drill"
    assert report["alerts"][0]["confirmation"]["how"] == "released automatically (drill)"
    html = render_html(report)
    assert html.count("EXERCISE / ÜBUNG") == 4  # title, banner, under the heading, the stage
    assert "Nothing was sent to any channel" in html
    assert 'class="sent"' not in html
    assert "The text prepared; it was not sent." in html


def test_a_live_run_in_dry_run_says_so():
    trail = [entry(0.3, "dry_run", channel="website", attempts=0)]
    html = render_html(build_report(one(alert(), [delivery("website", "dry_run")], trail), at(5)))
    assert "DRY RUN" in html
    assert "EXERCISE" not in html


def test_rejected_expired_and_cancelled_alerts_say_nothing_was_sent():
    rejected = alert(state="rejected", released_at=None, confirmed_by=None)
    trail = [
        entry(0.1, "confirmation_requested", mode="required"),
        entry(40, "rejected", "B. Yilmaz"),
    ]
    c = build_report(one(rejected, [], trail), at(50))["alerts"][0]["confirmation"]
    assert (c["decision"], c["decided_by"], c["wait_seconds"]) == ("rejected", "B. Yilmaz", 39.9)
    assert c["how"] == "rejected by the duty officer: nothing was sent"

    expired = alert(state="expired", released_at=None, confirmed_by=None)
    trail = [
        entry(0.1, "confirmation_requested", mode="required", on_timeout="abort"),
        entry(600.1, "confirmation_timeout", mode="required", then="abort"),
        entry(600.1, "expired"),
    ]
    c = build_report(one(expired, [], trail), at(700))["alerts"][0]["confirmation"]
    assert (c["decision"], c["decided_by"], c["wait_seconds"]) == ("expired", "timeout", 600.0)

    cancelled = alert(state="retracted", released_at=None, retraction_reason="Fehlalarm")
    trail = [
        entry(0.1, "confirmation_requested", mode="required"),
        entry(
            9,
            "retraction_requested",
            "http",
            reason="Fehlalarm",
            state_before="awaiting_confirmation",
        ),
    ]
    report = build_report(one(cancelled, [], trail), at(20))
    [a] = report["alerts"]
    assert a["confirmation"]["decision"] == "cancelled"
    assert a["retraction"] == {
        "by": "http",
        "at": "2026-11-23T10:15:09.000+01:00",
        "reason": "Fehlalarm",
        "state_before": "awaiting_confirmation",
        "correction": None,
    }
    assert "none needed: no channel had carried it" in render_html(report)


def test_an_alert_without_confirmation_and_its_correction():
    original = alert(state="retracted", confirmation_requested_at=None, confirmed_by=None)
    fix = alert(
        "FW-1:retraction",
        retracts="FW-1",
        msg_type="Cancel",
        retracted_by="A. Schmidt",
        created_at=at(60),
        confirmation_requested_at=None,
    )
    kept = delivery("website", "retracted", delivered_at=at(1), remote_id="r-1")
    fixed = delivery("website", "delivered", alert_id="FW-1:retraction", delivered_at=at(61))
    record = IncidentRecord(
        "E-1",
        [
            AlertRecord(
                original,
                [kept],
                [
                    entry(0.01, "trigger_received", "http"),
                    entry(0.02, "released"),
                    entry(
                        60, "retraction_requested", "A. Schmidt", reason="x", state_before="sent"
                    ),
                    entry(62, "retracted", channel="website", deleted=True, correction="r-2"),
                ],
            ),
            AlertRecord(
                fix,
                [fixed],
                [
                    AuditEntry(
                        at=at(60), alert_id=fix.id, event="correction_created", actor="A. Schmidt"
                    ),
                    AuditEntry(at=at(60.1), alert_id=fix.id, event="released", actor="A. Schmidt"),
                ],
            ),
        ],
    )
    first, second = build_report(record, at(100))["alerts"]
    assert first["confirmation"]["how"] == "released at once: the playbook asks for no confirmation"
    assert first["retraction"]["correction"] == "FW-1:retraction"
    [d] = first["deliveries"]
    assert d["outcome"] == "sent, then retracted"
    assert d["taken_down"]["deleted"] is True
    assert second["kind"] == "correction"
    assert second["trigger"]["source"] == "A. Schmidt"
    assert second["deliveries"][0]["delay_seconds"] == 1.0  # from the retraction's arrival
    assert second["confirmation"]["how"].startswith("sent at once (a retraction needs no")


def test_every_event_reads_as_a_sentence_and_an_unknown_one_keeps_its_detail():
    assert describe(entry(0, "link_opened", "A. Schmidt")) == "confirm link opened by A. Schmidt"
    assert describe(entry(0, "failed", channel="x", attempts=5, error="HTTP 500")) == (
        "x: failed after 5 attempt(s): HTTP 500"
    )
    assert describe(entry(0, "failed", deliveries=3)) == "alert failed"
    assert describe(entry(0, "reloaded", files=3)) == "reloaded: files 3"


async def test_read_incident_takes_its_alerts_and_only_its_own_refusals(tmp_path: Path):
    store = SqliteStore(tmp_path / "b.db")
    await store.open()
    try:
        await store.create_alert(alert(), [delivery("website", "delivered")])
        await store.create_alert(alert("FW-2", stage="update"), [])
        await store.create_alert(alert("OTHER", incident="E-2"), [])
        for trigger_id in ("FW-2", "OTHER", None, "E-1"):
            await store.audit(
                AuditEntry(
                    alert_id=None,
                    event="refused",
                    actor="mqtt",
                    detail={"trigger_id": trigger_id, "error": "invalid_params", "detail": "x"},
                )
            )
        await store.audit(AuditEntry(alert_id=None, event="intake_given_up", detail={}))
    finally:
        await store.close()
    record = await read_incident("sqlite:///b.db", tmp_path, "E-1")
    assert record is not None
    assert [r.alert.id for r in record.alerts] == ["FW-1", "FW-2"]
    assert [e.detail["trigger_id"] for e in record.refusals] == ["FW-2", "E-1"]
    assert [d.channel_id for d in record.alerts[0].deliveries] == ["website"]
    assert await read_incident("sqlite:///b.db", tmp_path, "E-404") is None
