"""Changes are picked up live, and one broken file never stops the other warnings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from typer.testing import CliRunner

from broadcaster.cli import app
from tests.integration.harness import (
    API_TOKEN,
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
STORM = {"from_time": "16:00", "until_time": "18:00", "wind_kmh": 120}


def break_languages(playbook: Path) -> int:
    """A YAML typo: the colon of `languages:` left out; returns the line of the typo."""
    text = playbook.read_text(encoding="utf-8")
    playbook.write_text(text.replace("languages:", "languages", 1), encoding="utf-8")
    return text[: text.index("languages:")].count("\n") + 1


def officer_config(public_url: str, officer_url: str) -> dict[str, dict[str, object]]:
    return {
        "public": webhook(public_url),
        "officer": webhook(officer_url, audience="internal"),
    }


OFFICERS = {"duty_officers": [{"name": "A. Schmidt", "notify": ["officer"]}]}


def verdict_of(watcher: Watcher, trigger_id: str) -> Callable[[], dict[str, Any] | None]:
    def found() -> dict[str, Any] | None:
        refused = (e for e in watcher.errors() if e["trigger_id"] == trigger_id)
        return watcher.alert(trigger_id) or next(refused, None)

    return found


async def test_a_template_edited_and_approved_goes_out_live_without_a_restart(
    tmp_path, mosquitto, watcher: Watcher, hooks
):
    public = hooks[0]
    channels = {"public": webhook(public.url, template="short")}
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels)
    template = tmp_path / "templates" / "major_fire" / "warning" / "short.de.j2"
    async with running_daemon(config):
        template.write_text(
            "NEU: " + template.read_text(encoding="utf-8"), encoding="utf-8"
        )  # now refused for live alerts until two people approve it
        runner = CliRunner()
        key = "major_fire/warning/short.de.j2"
        for name in ("A. Schmidt", "B. Yilmaz"):
            result = await asyncio.to_thread(
                runner.invoke, app, ["approve", key, "--by", name, "--config", str(config)]
            )
            assert result.exit_code == 0, result.output
        changed = time.monotonic()
        # The daemon sees the change by itself; a trigger sent before it has would be
        # refused as template_not_approved, so send until one is accepted.
        attempt = 0
        while True:
            attempt += 1
            trigger_id = f"FW-LIVE-EDIT-{attempt}"
            await publish(mosquitto.url, "bc/trigger", signed_trigger(trigger_id))
            outcome = await watcher.wait_for(verdict_of(watcher, trigger_id))
            if outcome.get("state"):
                break
            assert outcome["error"] == "template_not_approved", outcome
            assert time.monotonic() - changed < 10, "the change was never picked up"
        alert = await watcher.alert_in(trigger_id, "sent")
        print(
            f"reload: a live alert used the approved change {time.monotonic() - changed:.2f}s later"
        )
    assert alert["deliveries"]["public"]["state"] == "delivered"
    assert public.posts[-1].json["text"].startswith("NEU: Großbrand")


async def test_a_broken_playbook_and_channel_leave_the_others_working(
    tmp_path, mosquitto, watcher: Watcher, hooks
):
    public, officer, spare = hooks
    channels = {**officer_config(public.url, officer.url), "spare": webhook(spare.url)}
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels, extra=OFFICERS)
    storm = tmp_path / "playbooks" / "severe_storm.yaml"
    good_storm = storm.read_text(encoding="utf-8")
    typo_line = break_languages(storm)
    spare_file = tmp_path / "channels" / "spare.yaml"
    spare_file.write_text(spare_file.read_text() + "retries: 3\n", encoding="utf-8")
    async with running_daemon(config) as daemon:
        await officer.wait_for_requests(2)  # one notice per broken file
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-STILL-WORKS"))
        alert = await watcher.alert_in("FW-STILL-WORKS", "sent")
        await publish(
            mosquitto.url,
            "bc/trigger",
            signed_trigger("FW-STORM-1", scenario="severe_storm", params=STORM),
        )
        refusal = await watcher.error_for("FW-STORM-1", "unknown_scenario")
        # Fixed: a reload takes it in, and the storm warning works.
        storm.write_text(good_storm, encoding="utf-8")
        spare_file.write_text(spare_file.read_text().replace("retries: 3\n", ""), encoding="utf-8")
        url = f"http://{daemon.settings.http.listen}/api/reload"
        async with aiohttp.ClientSession() as http, http.post(url, headers=AUTH) as r:
            report = await r.json()
            assert r.status == 200, report
        await publish(
            mosquitto.url,
            "bc/trigger",
            signed_trigger("FW-STORM-2", scenario="severe_storm", params=STORM),
        )
        fixed = await watcher.alert_in("FW-STORM-2", "sent")
        await officer.wait_for_requests(3)  # the refused live trigger told too
    assert set(alert["deliveries"]) == {"public"}  # the broken channel was set aside
    assert "playbook severe_storm is not loaded" in refusal["detail"]
    assert f"line {typo_line}" in refusal["detail"]
    assert "severe_storm.yaml" in refusal["detail"]
    notices = [p.json for p in officer.posts]
    titles = [n["title"] for n in notices]
    assert sorted(titles) == [
        "Auslösung abgewiesen: severe_storm",
        "Kanal nicht geladen: spare",
        "Playbook nicht geladen: severe_storm",
    ]
    assert all(n["kind"] == "refusal" for n in notices)
    assert report["set_aside"] == []
    assert "severe_storm" in report["loaded"]["playbooks"]
    assert set(fixed["deliveries"]) == {"public", "spare"}
    assert len(spare.posts) == 1


def test_validate_reports_a_broken_playbook_once_at_its_line(deployment_copy: Path):
    storm = deployment_copy.parent / "playbooks" / "severe_storm.yaml"
    typo_line = break_languages(storm)
    result = CliRunner().invoke(app, ["validate", "--config", str(deployment_copy)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "severe_storm" in line]
    assert len(lines) == 1, result.output  # no follow-on warnings about its templates
    assert f"line {typo_line}" in lines[0]
    assert "write it as `key: value`" in lines[0]
