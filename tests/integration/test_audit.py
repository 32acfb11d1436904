"""The audit trail of a real incident: GET /api/alerts/{id}/audit on the running daemon,
then `broadcaster audit` and `broadcaster report` reading the store it left behind."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
from typer.testing import CliRunner

from broadcaster.cli import app
from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    API_TOKEN,
    FIRE,
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)
from tests.integration.incidents import Officer

runner = CliRunner()
OFFICER = "A. Schmidt"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return await asyncio.to_thread(runner.invoke, app, list(args), env=env)


async def release(officer: Officer, alert_id: str) -> str:
    url = await officer.link(alert_id)
    await officer.open(url)
    # The page after the action (?done=released) is no new opening of the link.
    async with officer.http.post(url, data={"action": "release"}, allow_redirects=True) as r:
        assert r.status == 200
        assert "done=released" in str(r.url)
    return url


async def run_incident(tmp_path: Path, mosquitto: Any, watcher: Watcher, hooks: list[FakeWebhook]):
    public, officer_hook, _ = hooks
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={
            "website": webhook(public.url),
            "officer_phone": webhook(officer_hook.url, audience="internal"),
        },
        confirmation={"mode": "required", "timeout": "10m", "on_timeout": "abort"},
        extra={
            "duty_officers": [{"name": OFFICER, "notify": ["officer_phone"]}],
            "confirm": {"undo_window": "0s"},
        },
    )
    api: dict[str, Any] = {}
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        base = f"http://{daemon.settings.http.listen}"
        officer = Officer(officer_hook, http)
        public.script(503)  # the website's first answer
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-AU-1", incident="E-AU"))
        url = await release(officer, "FW-AU-1")
        await watcher.alert_in("FW-AU-1", "sent")
        await officer.open(url)  # the officer looks again later

        bad_stage = signed_trigger("FW-AU-2", incident="E-AU", stage="nonsense")
        await publish(mosquitto.url, "bc/trigger", bad_stage)
        await watcher.error_for("FW-AU-2", "unknown_stage")
        update = signed_trigger("FW-AU-2", incident="E-AU", stage="update")
        await publish(mosquitto.url, "bc/trigger", update)
        await release(officer, "FW-AU-2")
        await watcher.alert_in("FW-AU-2", "sent")
        async with http.post(
            f"{base}/api/alerts/FW-AU-2/retract", json={"reason": "Fehlalarm"}, headers=AUTH
        ) as r:
            assert r.status == 202
        await watcher.alert_in("FW-AU-2:retraction", "sent")
        other = signed_trigger("FW-AU-BAD", scenario="flood", params=FIRE)
        await publish(mosquitto.url, "bc/trigger", other)
        await watcher.error_for("FW-AU-BAD", "unknown_scenario")

        for alert_id in ("FW-AU-1", "FW-AU-2:retraction", "NOPE"):
            async with http.get(f"{base}/api/alerts/{alert_id}/audit", headers=AUTH) as r:
                api[alert_id] = (r.status, await r.json())
        async with http.get(f"{base}/api/alerts/FW-AU-1/audit") as r:
            api["no token"] = (r.status, await r.json())
    return config, api, public


async def test_the_audit_trail_over_http_and_on_the_command_line(
    tmp_path, mosquitto, watcher, hooks
):
    config, api, public = await run_incident(tmp_path, mosquitto, watcher, hooks)

    # -- GET /api/alerts/{id}/audit -----------------------------------------------------
    status, trail = api["FW-AU-1"]
    assert status == 200
    assert all(set(e) == {"at", "actor", "event", "detail"} for e in trail)
    assert [e["at"] for e in trail] == sorted(e["at"] for e in trail)  # oldest first
    events = [e["event"] for e in trail]
    for event in (
        "trigger_received",
        "confirmation_requested",
        "officer_asked",
        "link_opened",
        "release_requested",
        "released",
        "retry_scheduled",
        "delivered",
        "sent",
    ):
        assert event in events, event
    opened = [e for e in trail if e["event"] == "link_opened"]
    assert [(e["actor"], e["detail"]) for e in opened] == [(OFFICER, {"officer": OFFICER})] * 2
    assert events.index("link_opened") < events.index("release_requested")
    [retry] = [e for e in trail if e["event"] == "retry_scheduled"]
    assert retry["detail"]["attempt"] == 1
    assert "503" in retry["detail"]["error"]
    [done] = [e for e in trail if e["event"] == "delivered"]
    remote_id = done["detail"]["remote_id"]
    assert public.post(remote_id).json["alert_id"] == "FW-AU-1"  # the provider's own answer
    assert done["detail"]["url"] == f"https://hooks.example/{remote_id}"
    assert done["detail"]["attempts"] == 2
    assert done["detail"]["channel"] == "website"
    status, correction = api["FW-AU-2:retraction"]
    assert status == 200
    assert [e["event"] for e in correction][:2] == ["correction_created", "released"]
    assert api["NOPE"] == (404, {"error": "not_found", "detail": "no alert 'NOPE'"})
    assert api["no token"][0] == 401

    # -- broadcaster audit ----------------------------------------------------------------
    c = str(config)
    one = await invoke("audit", "FW-AU-1", "--config", c)
    assert one.exit_code == 0, one.output
    assert f"link_opened  by {OFFICER}" in one.output
    assert f"  url: https://hooks.example/{remote_id}" in one.output
    assert "  alert " not in one.output  # one alert: its id is not repeated per event

    incident = await invoke("audit", "--incident", "E-AU", "--config", c)
    assert incident.exit_code == 0, incident.output
    lines = incident.output.splitlines()
    for alert_id in ("FW-AU-1", "FW-AU-2", "FW-AU-2:retraction"):
        assert f"  alert {alert_id}" in lines, alert_id  # whole, copyable
    as_json = await invoke("audit", "--incident", "E-AU", "--json", "--config", c)
    entries = json.loads(as_json.output)
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert {e["alert_id"] for e in entries} == {"FW-AU-1", "FW-AU-2", "FW-AU-2:retraction"}
    by_event = {(e["alert_id"], e["event"]) for e in entries}
    assert ("FW-AU-2", "retraction_requested") in by_event
    assert ("FW-AU-2:retraction", "correction_created") in by_event
    taken_down = [e for e in entries if e["event"] == "retracted" and "deleted" in e["detail"]]
    assert [(e["alert_id"], e["detail"]["deleted"]) for e in taken_down] == [("FW-AU-2", True)]
    apart = []
    for alert_id in ("FW-AU-1", "FW-AU-2", "FW-AU-2:retraction"):
        apart += json.loads((await invoke("audit", alert_id, "--json", "--config", c)).output)
    assert sorted(json.dumps(e) for e in entries) == sorted(json.dumps(e) for e in apart)

    unattached = await invoke("audit", "--config", c)
    assert unattached.exit_code == 0, unattached.output
    assert unattached.output.count("refused  by mqtt") == 2
    assert "  trigger_id: FW-AU-BAD" in unattached.output
    assert "  alert" not in unattached.output
    assert "  error: unknown_stage" in unattached.output
    assert unattached.output.index("unknown_stage") < unattached.output.index("unknown_scenario")

    missing = await invoke("audit", "NOPE", "--config", c)
    assert missing.exit_code == 1
    assert "no alert 'NOPE'" in missing.output
    no_incident = await invoke("audit", "--incident", "E-404", "--config", c)
    assert no_incident.exit_code == 1
    assert "no incident 'E-404'" in no_incident.output
    both = await invoke("audit", "FW-AU-1", "--incident", "E-AU", "--config", c)
    assert both.exit_code == 2
    assert "not both" in both.output

    # -- broadcaster report ---------------------------------------------------------------
    out = tmp_path / "out"
    made = await invoke("report", "E-AU", "--out", str(out), "--config", c)
    assert made.exit_code == 0, made.output
    assert "incident E-AU: 2 alert(s), 1 correction(s), 3 of 3 deliveries sent" in made.output
    paths = [Path(line.removeprefix("report: ")) for line in made.output.splitlines()[-2:]]
    assert [p.parent for p in paths] == [out, out]
    assert [p.suffix for p in paths] == [
        ".json",
        ".html",
    ]
    report = json.loads(paths[0].read_text("utf-8"))
    assert report["scenario_name"] == "Major fire"
    assert [a["id"] for a in report["alerts"]] == ["FW-AU-1", "FW-AU-2", "FW-AU-2:retraction"]
    assert [(r["trigger_id"], r["error"]) for r in report["refusals"]] == [
        ("FW-AU-2", "unknown_stage")
    ]
    website = report["alerts"][0]["deliveries"][0]
    assert (website["attempts"], website["remote_id"]) == (2, remote_id)
    assert report["alerts"][0]["confirmation"]["decided_by"] == OFFICER
    assert "After-action report: incident" in paths[1].read_text("utf-8")

    state = tmp_path / "state"
    env = {"XDG_STATE_HOME": str(state)}
    again = [await invoke("report", "E-AU", "--config", c, env=env) for _ in range(2)]
    assert all(r.exit_code == 0 for r in again), again[0].output
    written = sorted((state / "broadcaster" / "reports").iterdir())
    assert len(written) == 4  # two reports, two files each, none overwritten
    assert all(p.name.startswith("incident-E-AU-") for p in written)
    unknown = await invoke("report", "E-404", "--config", c, env=env)
    assert unknown.exit_code == 1
    assert "no incident 'E-404'" in unknown.output
