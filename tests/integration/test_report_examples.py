"""The after-action report of a real incident of each sample playbook (incidents.py):
what it says must match what the daemon did and what the fake providers received.

With BROADCASTER_WRITE_EXAMPLES=1 the reports are also written to docs/reports/ as the
committed examples (then run tests/browser/test_report_examples.py for the screenshots).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import datetime
from typing import Any

from broadcaster.report import build_report, render_html, render_json
from tests.integration.incidents import (
    BERLIN,
    OFFICER,
    PUBLIC,
    RETRACTION_REASON,
    IncidentRun,
    run_incident,
)
from tests.servers import REPO

EXAMPLES = REPO / "docs" / "reports"


def report_of(run: IncidentRun) -> dict[str, Any]:
    record = replace(run.record, scenario_names=run.scenario_names)
    return build_report(record, datetime.now(BERLIN))


def keep_example(run: IncidentRun, report: dict[str, Any]) -> None:
    if os.environ.get("BROADCASTER_WRITE_EXAMPLES") != "1":
        return
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    (EXAMPLES / f"{run.playbook}.json").write_text(render_json(report), encoding="utf-8")
    (EXAMPLES / f"{run.playbook}.html").write_text(render_html(report), encoding="utf-8")


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in report["alerts"]}


def deliveries(alert: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["channel"]: d for d in alert["deliveries"]}


def events(report: dict[str, Any], alert_id: str) -> list[str]:
    return [t["event"] for t in report["timeline"] if t["alert_id"] == alert_id]


async def test_major_fire_report_names_the_officer_each_channel_and_the_retry(
    tmp_path, mosquitto, watcher
):
    run = await run_incident("major_fire", tmp_path, mosquitto, watcher)
    report = report_of(run)
    keep_example(run, report)
    alerts = by_id(report)
    assert list(alerts) == ["FW-DUS-2026-000123", "FW-DUS-2026-000131", "FW-DUS-2026-000147"]
    assert report["summary"]["stages"] == ["warning", "update", "all_clear"]
    assert report["mode"] == "live"
    assert report["exercise"] is False
    assert report["time_zone"] in ("UTC+01:00", "UTC+02:00")  # Berlin, winter or summer
    assert report["scenario_name"] == "Major fire"
    for alert in alerts.values():
        c = alert["confirmation"]
        assert alert["trigger"]["source"] == "mqtt"
        assert c["decision"] == "released"
        assert c["decided_by"] == OFFICER
        assert c["how"] == f"released by the duty officer {OFFICER}"
        assert [o["officer"] for o in c["links_opened"]] == [OFFICER]
        assert [o["officer"] for o in c["officers_asked"]] == [OFFICER]
        # The wait covers the undo window of 1 s after the officer's release.
        assert c["wait_seconds"] is not None
        assert c["wait_seconds"] >= 1.0
        sent = deliveries(alert)
        assert sorted(sent) == sorted(PUBLIC)
        for d in sent.values():
            assert d["state"] == "delivered"
            assert d["sent"] is True
            assert d["delivered_at"] is not None
            assert d["delay_seconds"] >= 1.0
            assert d["answer"]["event"] == "delivered"
    warning = deliveries(alerts["FW-DUS-2026-000123"])
    website = warning["website_hook"]
    assert website["attempts"] == 2
    assert [r["attempt"] for r in website["retries"]] == [1]
    assert "503" in website["retries"][0]["error"]
    # The remote id and URL are the fake provider's own answer.
    post = run.fakes.webhook.post(website["remote_id"])
    assert post.json["alert_id"] == "FW-DUS-2026-000123"
    assert website["url"] == f"https://hooks.example/{website['remote_id']}"
    assert website["answer"]["url"] == website["url"]
    assert website["answer"]["attempts"] == 2
    assert website["text"] == post.json["text"]  # the text as sent
    assert warning["sms_residents"]["recipients"] == {"total": 2, "delivered": 2, "failed": 0}
    assert all(d["attempts"] == 1 for cid, d in warning.items() if cid != "website_hook")
    assert report["summary"]["sent"] == 3 * len(PUBLIC)
    assert report["refusals"] == []
    html = render_html(report)
    assert "EXERCISE" not in html
    assert "ÜBUNG" not in html
    assert html.count('class="card"') == 3 * len(PUBLIC)


async def test_bomb_defusal_report_shows_the_refusal_the_retraction_and_its_deletions(
    tmp_path, mosquitto, watcher
):
    run = await run_incident("bomb_defusal", tmp_path, mosquitto, watcher)
    report = report_of(run)
    keep_example(run, report)
    first, second = "FW-DUS-2026-000201", "FW-DUS-2026-000215"
    correction = f"{second}:retraction"
    alerts = by_id(report)
    assert list(alerts) == [first, second, correction]
    assert report["summary"]["corrections"] == 1
    [refusal] = report["refusals"]
    assert refusal["trigger_id"] == first
    assert refusal["error"] == "invalid_params"
    assert "radius_m" in refusal["detail"]
    assert refusal["source"] == "mqtt"
    assert alerts[first]["state"] == "sent"
    assert alerts[second]["state"] == "retracted"
    retraction = alerts[second]["retraction"]
    assert retraction["by"] == OFFICER
    assert retraction["reason"] == RETRACTION_REASON
    assert retraction["correction"] == correction
    assert retraction["state_before"] == "sent"
    fixed = alerts[correction]
    assert fixed["kind"] == "correction"
    assert fixed["retracts"] == second
    assert fixed["trigger"]["source"] == OFFICER
    assert fixed["confirmation"]["required"] is False
    originals = deliveries(alerts[second])
    for cid, d in originals.items():
        assert d["state"] == "retracted", cid
        assert d["sent"] is True, cid
        assert d["outcome"] == "sent, then retracted"
        assert d["taken_down"]["deleted"] is (cid not in ("sms_residents", "email_press")), cid
    toot = originals["mastodon_city"]["remote_id"]
    assert toot in run.fakes.mastodon.deleted
    for cid, d in deliveries(fixed).items():
        assert d["state"] == "delivered", cid
        assert RETRACTION_REASON in d["text"], cid
    # The correction's delivery is the one named where the original was taken down.
    assert (
        originals["website_hook"]["taken_down"]["correction_remote_id"]
        == (deliveries(fixed)["website_hook"]["remote_id"])
    )
    trail = events(report, second)
    assert trail.index("released") < trail.index("retraction_requested") < trail.index("retracted")
    timeline_refused = [t for t in report["timeline"] if t["event"] == "refused"]
    assert len(timeline_refused) == 1
    assert timeline_refused[0]["at"] < alerts[first]["trigger"]["received_at"]
    html = render_html(report)
    assert RETRACTION_REASON in html
    assert "invalid_params" in html


async def test_severe_storm_drill_report_never_calls_a_dry_run_sent(tmp_path, mosquitto, watcher):
    run = await run_incident("severe_storm", tmp_path, mosquitto, watcher)
    report = report_of(run)
    keep_example(run, report)
    assert report["mode"] == "drill"
    assert report["exercise"] is True
    warning, update, all_clear = report["alerts"]
    assert warning["confirmation"]["decided_by"] == "timeout"
    assert "confirmation mode auto" in warning["confirmation"]["how"]
    assert [o["officer"] for o in warning["confirmation"]["links_opened"]] == [OFFICER]
    assert update["confirmation"]["decided_by"] == OFFICER
    assert all_clear["confirmation"]["decided_by"] == OFFICER
    sent_posts = len(run.fakes.webhook.posts) + len(run.fakes.mastodon.posts)
    assert sent_posts == 6  # three stages on the two channels that take drills
    assert run.fakes.sms.messages == []
    assert run.fakes.smtp.messages == []
    for alert in report["alerts"]:
        for cid, d in deliveries(alert).items():
            if cid in ("website_hook", "mastodon_city"):
                assert d["state"] == "delivered"
                assert d["outcome"] == "sent (exercise text)"
            else:
                assert d["state"] == "dry_run", cid
                assert d["sent"] is False, cid
                assert d["delivered_at"] is None
                assert d["delay_seconds"] is None
                assert d["outcome"] == "not sent: dry run, no channel was contacted"
    assert report["summary"]["sent"] == 6
    assert report["summary"]["dry_run"] == 3 * (len(PUBLIC) - 2)
    html = render_html(report)
    assert html.count("EXERCISE / ÜBUNG") >= 1 + len(report["alerts"])
    assert "Nothing was sent" not in html  # two channels did take the exercise
    data = json.loads(render_json(report))
    assert data["summary"] == report["summary"]
