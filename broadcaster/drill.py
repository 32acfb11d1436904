"""`broadcaster drill`: the whole path in one process, as a rehearsal with a record.

Intake, rendering, confirmation (released automatically, as "drill"), and the fan-out
to every public channel in dry-run: no channel is contacted. Everything runs against a
throwaway SQLite store, so a drill leaves no trace in the real one. The report is a
timeline (trigger received, rendered, confirmed, each channel's delivery and latency)
with the text each channel would have carried, printed and written as JSON and as a
self-contained HTML file an office can attach to its drill record.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any, get_args

from broadcaster.deployment import Deployment
from broadcaster.dispatch import Dispatcher
from broadcaster.models import Alert, AuditEntry, Delivery, ErrorCode
from broadcaster.pipeline import build_pipeline
from broadcaster.playbooks import Playbook
from broadcaster.reports import report_stem, reports_folder, write_new
from broadcaster.store.sqlite import SqliteStore
from broadcaster.triggering import build_trigger


class ReleaseAtOnce:
    """The drill's confirmation gate: the officer's step is rehearsed as released."""

    dispatcher: Dispatcher

    async def request(self, alert: Alert, playbook: Playbook) -> None:
        await self.dispatcher.store.audit(
            AuditEntry(
                alert_id=alert.id,
                event="confirmation_requested",
                detail={"mode": playbook.confirmation.mode, "drill": "auto-released"},
            )
        )
        await self.dispatcher.release(alert.id, "drill (auto-released)")


@dataclass
class DrillReport:
    scenario: str
    scenario_name: str
    stage: str
    params: dict[str, Any]
    outcome: str  # the alert's final state, or the refusal's error code
    detail: str = ""
    alert_id: str = ""
    started_at: str = ""
    timeline: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    unapproved: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False, indent=2, default=str)


def drill_id() -> str:
    return f"DRILL-{uuid.uuid4().hex[:12]}"


def _ms(start: datetime, moment: datetime) -> int:
    return round((moment - start).total_seconds() * 1000)


async def run_drill(
    deployment: Deployment, scenario: str, params: dict[str, str], stage: str | None = None
) -> DrillReport:
    playbook = deployment.playbooks[scenario]
    with tempfile.TemporaryDirectory(prefix="broadcaster-drill-") as folder:
        store = SqliteStore(Path(folder) / "drill.db")
        await store.open()
        gate = ReleaseAtOnce()
        pipeline = build_pipeline(deployment, store, {}, owner="drill", dry_run=True, gate=gate)
        gate.dispatcher = dispatcher = pipeline.dispatcher
        try:
            payload = build_trigger(
                scenario,
                "drill",
                params,
                alert_id=drill_id(),
                stage=stage,
                secret=deployment.settings.security.trigger_secret,
            )
            outcome = await pipeline.receiver.receive_trigger(
                json.dumps(payload, ensure_ascii=False).encode(), "drill", owner="drill"
            )
            await dispatcher.drain(60)
            report = DrillReport(
                scenario,
                playbook.name[playbook.primary_language],
                stage or playbook.default_stage,
                dict(params),
                outcome.result,
            )
            if outcome.refusal is not None:
                report.outcome = outcome.refusal["error"]
                report.detail = outcome.refusal["detail"]
                report.alert_id = payload["id"]
                report.started_at = str(outcome.refusal.get("received_at", ""))
                return report
            alert = await store.get_alert(payload["id"])
            assert alert is not None
            deliveries = await store.get_deliveries(alert.id)
            trail = await store.audit_trail(alert.id)
            return describe(report, alert, deliveries, trail)
        finally:
            await pipeline.events.flush(10)  # its state reads need the store still open
            await store.close()


def describe(
    report: DrillReport, alert: Alert, deliveries: list[Delivery], trail: list[AuditEntry]
) -> DrillReport:
    start = alert.created_at
    report.alert_id = alert.id
    report.outcome = alert.state
    report.started_at = start.isoformat()
    report.unapproved = alert.unapproved
    names = {
        "trigger_received": "trigger received, checked and rendered",
        "confirmation_requested": "confirmation requested",
        "released": "confirmed (released)",
    }
    for entry in trail:
        if entry.event in names:
            report.timeline.append(
                {"at_ms": _ms(start, entry.at), "event": names[entry.event], "by": entry.actor}
            )
        elif entry.event in ("dry_run", "delivered", "failed"):
            report.timeline.append(
                {
                    "at_ms": _ms(start, entry.at),
                    "event": f"{entry.detail.get('channel')}: {entry.event}",
                    "by": entry.actor,
                }
            )
        elif entry.event in ("sent", "partially_failed"):
            report.timeline.append(
                {"at_ms": _ms(start, entry.at), "event": f"alert {entry.event}", "by": entry.actor}
            )
    for d in deliveries:
        report.deliveries.append(
            {
                "channel": d.channel_id,
                "type": d.channel_type,
                "language": d.language,
                "variant": d.variant,
                "state": d.state,
                "latency_ms": _ms(start, d.updated_at),
                "title": d.title,
                "text": d.text,
            }
        )
    return report


REFUSALS = frozenset(get_args(ErrorCode))


def outcome_text(report: DrillReport) -> str:
    """The outcome as it truly was: a drill here contacts no channel, so "sent" means
    every channel recorded the text it would have carried."""
    if report.outcome in REFUSALS:
        return f"refused ({report.outcome}): nothing was rendered, no channel was contacted"
    if report.outcome == "sent":
        return (
            "completed as a rehearsal: every channel recorded its text, "
            "none was contacted (dry run)"
        )
    return f"ended {report.outcome} (see each channel below); none was contacted (dry run)"


def render_text(report: DrillReport) -> str:
    title = f"{report.scenario_name} ({report.scenario}/{report.stage})"
    lines = [f"DRILL {title}: {outcome_text(report)}"]
    if report.detail:
        lines.append(f"  {report.detail}")
    for event in report.timeline:
        lines.append(f"  +{event['at_ms']:>6} ms  {event['event']}")
    for d in report.deliveries:
        lines.append(
            f"\n--- {d['channel']} ({d['type']}, {d['language']}, {d['variant']}): "
            f"{d['state']} after {d['latency_ms']} ms"
        )
        lines.append(d["text"])
    if report.unapproved:
        lines.append("\nNot approved for live alerts (allowed in drills):")
        lines += [f"  {key}" for key in report.unapproved]
    return "\n".join(lines)


def render_html(report: DrillReport) -> str:
    """One file, no outside resources: it must open from an e-mail attachment."""
    rows = "".join(
        f"<tr><td>+{e['at_ms']} ms</td><td>{escape(e['event'])}</td><td>{escape(e['by'])}</td></tr>"
        for e in report.timeline
    )
    cards = "".join(
        f"<section><h3>{escape(d['channel'])} <small>{escape(d['type'])}, {escape(d['language'])}"
        f", {escape(d['variant'])} &middot; {escape(d['state'])} after {d['latency_ms']} ms"
        f"</small></h3><p class=title>{escape(d['title'])}</p><pre>{escape(d['text'])}</pre>"
        f"</section>"
        for d in report.deliveries
    )
    params = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
        for k, v in report.params.items()
    )
    unapproved = (
        "<h2>Not approved for live alerts</h2><ul>"
        + "".join(f"<li>{escape(k)}</li>" for k in report.unapproved)
        + "</ul>"
        if report.unapproved
        else "<p>All templates are approved.</p>"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drill report: {escape(report.scenario_name)} ({escape(report.alert_id)})</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b}}
.banner{{background:repeating-linear-gradient(45deg,#ffd400,#ffd400 14px,#1b1b1b 14px,
#1b1b1b 28px);padding:.4rem}}
.banner b{{display:block;background:#ffd400;text-align:center;font-size:1.4rem;padding:.3rem}}
table{{border-collapse:collapse;width:100%}} td,th{{text-align:left;padding:.25rem .5rem;
border-bottom:1px solid #ddd;vertical-align:top}}
section{{border:1px solid #ccc;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}}
pre{{white-space:pre-wrap;font:inherit;margin:0}} .title{{font-weight:600}}
small{{color:#555;font-weight:normal}}
</style></head><body>
<div class=banner><b>EXERCISE / ÜBUNG &middot; nothing was sent</b></div>
<h1>Drill: {escape(report.scenario_name)} &middot; {escape(report.stage)}</h1>
<p>Alert {escape(report.alert_id)}, started {escape(report.started_at)}:
<b>{escape(outcome_text(report))}</b>. {escape(report.detail)}</p>
<h2>Parameters</h2><table>{params}</table>
<h2>Timeline</h2><table>{rows}</table>
{unapproved}
<h2>What each channel would have carried</h2>{cards}
</body></html>
"""


def write_report(report: DrillReport, folder: Path | None = None) -> tuple[Path, Path]:
    """The JSON and HTML report, as new files (never replacing an earlier report) in
    `folder`, by default the reports folder outside the repository (reports.py)."""
    target = reports_folder(folder)
    at = datetime.fromisoformat(report.started_at) if report.started_at else None
    stem = report_stem(f"drill-{report.scenario}-{report.stage}", report.alert_id, at)
    json_path = write_new(target / f"{stem}.json", report.as_json() + "\n")
    html_path = write_new(target / f"{stem}.html", render_html(report))
    return json_path, html_path
