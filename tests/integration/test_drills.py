"""The two promises, from several directions: a drill never reaches a public channel that
is not set up for drills, and a live alert never goes out marked as an exercise or from
an unapproved template."""

from __future__ import annotations

import json
import re

import aiohttp
from typer.testing import CliRunner

from broadcaster.cli import app
from tests.integration.harness import (
    API_TOKEN,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)
from tests.integration.test_crash import onlines, start_daemon

PREFIXES = ("ÜBUNG: ", "EXERCISE: ")


def mixed(hooks):
    """hook_test is a test account (drill: send); hook_public and hook_default are not."""
    test_account, public, default = hooks
    return {
        "hook_test": webhook(test_account.url),
        "hook_public": webhook(public.url, drill="dry_run"),
        "hook_default": {"type": "webhook", "url": default.url},  # drill unset: dry_run
        "hook_test_en": webhook(test_account.url, language="en", template="short"),
    }


async def test_a_drill_over_mqtt_reaches_exactly_the_drill_channels_all_prefixed(
    tmp_path, mosquitto, watcher, hooks
):
    test_account, public, default = hooks
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=mixed(hooks))
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("DR-1", mode="drill"))
        alert = await watcher.alert_in("DR-1", "sent")
    assert public.requests == []
    assert default.requests == []
    states = {cid: d["state"] for cid, d in alert["deliveries"].items()}
    assert states == {
        "hook_test": "delivered",
        "hook_test_en": "delivered",
        "hook_public": "dry_run",
        "hook_default": "dry_run",
    }
    assert len(test_account.posts) == 2
    for post in test_account.posts:
        assert post.json["mode"] == "drill"
        assert post.json["text"].startswith(PREFIXES)
        assert post.json["title"].startswith(PREFIXES)


async def test_a_drill_over_http_keeps_the_dry_run_text(tmp_path, mosquitto, watcher, hooks):
    _, public, default = hooks
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=mixed(hooks))
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        url = f"http://{daemon.settings.http.listen}/api/triggers"
        trigger = signed_trigger("DR-HTTP", mode="drill")
        async with http.post(
            url, json=trigger, headers={"Authorization": f"Bearer {API_TOKEN}"}
        ) as r:
            assert r.status == 202
        await watcher.alert_in("DR-HTTP", "sent")
        [kept] = [
            d for d in await daemon.store.get_deliveries("DR-HTTP") if d.channel_id == "hook_public"
        ]
    assert kept.state == "dry_run"
    assert kept.text.startswith("ÜBUNG: ")
    assert public.requests == []
    assert default.requests == []


async def test_run_dry_run_contacts_nobody_whatever_the_mode(tmp_path, mosquitto, watcher, hooks):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=mixed(hooks))
    async with running_daemon(config, dry_run=True):
        await publish(mosquitto.url, "bc/trigger", signed_trigger("DRY-LIVE"))
        await publish(mosquitto.url, "bc/trigger", signed_trigger("DRY-DRILL", mode="drill"))
        live = await watcher.alert_in("DRY-LIVE", "sent")
        await watcher.alert_in("DRY-DRILL", "sent")
    assert all(h.requests == [] for h in hooks)
    assert {d["state"] for d in live["deliveries"].values()} == {"dry_run"}


async def test_a_drill_and_a_live_alert_of_one_incident_do_not_mix(
    tmp_path, mosquitto, watcher, hooks
):
    test_account = hooks[0]
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook_test": webhook(test_account.url)}
    )
    async with running_daemon(config):
        for alert_id, mode, stage in (
            ("MIX-LIVE-1", "live", None),
            ("MIX-DRILL-1", "drill", None),
            ("MIX-DRILL-2", "drill", "update"),
            ("MIX-LIVE-2", "live", "update"),
        ):
            await publish(
                mosquitto.url,
                "bc/trigger",
                signed_trigger(alert_id, mode=mode, stage=stage, incident="E-MIX"),
            )
            await watcher.alert_in(alert_id, "sent")
    posts = {p.json["alert_id"]: p for p in test_account.posts}
    remote = {aid: test_account.posts.index(p) for aid, p in posts.items()}
    assert set(remote) == {"MIX-LIVE-1", "MIX-DRILL-1", "MIX-DRILL-2", "MIX-LIVE-2"}
    drill_update, live_update = posts["MIX-DRILL-2"].json, posts["MIX-LIVE-2"].json
    # Each follow-up threads under the first post of its own mode, never the other's.
    assert test_account.post(drill_update["in_reply_to"]).json["alert_id"] == "MIX-DRILL-1"
    assert test_account.post(live_update["in_reply_to"]).json["alert_id"] == "MIX-LIVE-1"
    assert not live_update["text"].startswith(PREFIXES)
    assert drill_update["text"].startswith(PREFIXES)


async def test_an_unapproved_template_stops_a_live_alert_but_not_a_drill(
    tmp_path, mosquitto, watcher, hooks
):
    test_account = hooks[0]
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook_test": webhook(test_account.url)}
    )
    template = tmp_path / "templates/major_fire/warning/short.de.j2"
    template.write_text(template.read_text(encoding="utf-8") + " Neu.\n", encoding="utf-8")
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("UNAPPROVED-LIVE"))
        await watcher.error_for("UNAPPROVED-LIVE", "template_not_approved")
        await publish(mosquitto.url, "bc/trigger", signed_trigger("UNAPPROVED-DRILL", mode="drill"))
        await watcher.alert_in("UNAPPROVED-DRILL", "sent")
        drill = await daemon.store.get_alert("UNAPPROVED-DRILL")
    assert drill is not None
    assert drill.unapproved == ["major_fire/warning/short.de.j2"]
    assert [p.json["alert_id"] for p in test_account.posts] == ["UNAPPROVED-DRILL"]


async def test_a_drill_resumed_after_a_crash_still_skips_dry_run_channels(
    tmp_path, mosquitto, watcher, hooks
):
    """kill -9 with a drill half sent: the restarted daemon must not treat what is left
    as live."""
    test_account, public, default = hooks
    test_account.hold()
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels=mixed(hooks), client_id="broadcaster-drill-crash"
    )
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        await watcher.wait_for(lambda: onlines(watcher) >= 1)
        await publish(mosquitto.url, "bc/trigger", signed_trigger("DR-CRASH", mode="drill"))
        await test_account.wait_for_requests(1)
        daemon.kill()
        daemon.wait(10)
        test_account.release()
        before = onlines(watcher)
        daemon = start_daemon(config, log)
        await watcher.wait_for(lambda: onlines(watcher) > before)
        alert = await watcher.alert_in("DR-CRASH", "sent")
    finally:
        daemon.kill()
        daemon.wait(10)
    assert public.requests == [], log.read_text()
    assert default.requests == [], log.read_text()
    assert alert["deliveries"]["hook_public"]["state"] == "dry_run"
    assert alert["deliveries"]["hook_test"]["state"] == "delivered"


FIRE_PARAMS = ["-p", "location=Ackerstraße 12", "-p", "district=Flingern-Nord"]


def drill_deployment(tmp_path):
    return write_deployment(
        tmp_path,
        mqtt_url="mqtt://127.0.0.1:9",
        channels={"hook_test": webhook("http://127.0.0.1:9/never"), "log_de": {"type": "log"}},
    )


def drill(config, *args: str):
    return CliRunner().invoke(
        app, ["drill", "major_fire", *FIRE_PARAMS, *args, "--config", str(config)]
    )


def test_the_drill_command_reports_without_contacting_anyone(tmp_path):
    config = drill_deployment(tmp_path)
    out = tmp_path / "reports"
    result = drill(config, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (
        "DRILL Großbrand (major_fire/warning): completed as a rehearsal: every channel "
        "recorded its text, none was contacted (dry run)" in result.output
    )
    [json_path] = out.glob("*.json")
    assert re.fullmatch(
        r"drill-major_fire-warning-\d{8}T\d{6}Z-DRILL-[0-9a-f]{12}\.json", json_path.name
    )
    report = json.loads(json_path.read_text(encoding="utf-8"))
    assert json_path.name.endswith(f"{report['alert_id']}.json")
    assert report["outcome"] == "sent"
    assert {d["state"] for d in report["deliveries"]} == {"dry_run"}  # even the drill: send one
    assert all(d["text"].startswith(PREFIXES) for d in report["deliveries"])
    events = [e["event"] for e in report["timeline"]]
    assert events[0] == "trigger received, checked and rendered"
    assert "confirmed (released)" in events
    assert events[-1] == "alert sent"
    html = json_path.with_suffix(".html").read_text(encoding="utf-8")
    assert "EXERCISE / ÜBUNG" in html
    assert "<script" not in html
    # The outcome under the "nothing was sent" banner must not say "sent".
    assert "outcome <b>sent</b>" not in html
    assert "none was contacted (dry run)" in html
    assert str(json_path) in result.output
    assert str(json_path.with_suffix(".html")) in result.output


def test_a_second_drill_of_the_same_stage_keeps_the_first_report(tmp_path):
    config = drill_deployment(tmp_path)
    out = tmp_path / "reports"
    first, second = drill(config, "--out", str(out)), drill(config, "--out", str(out))
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    reports = sorted(out.glob("*.json"))
    assert len(reports) == 2
    assert len(list(out.glob("*.html"))) == 2
    ids = {json.loads(p.read_text(encoding="utf-8"))["alert_id"] for p in reports}
    assert len(ids) == 2


def test_drill_reports_go_outside_the_repository_by_default(tmp_path, monkeypatch):
    config = drill_deployment(tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo")
    before = sorted(p.name for p in (tmp_path / "repo").iterdir())
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    result = drill(config)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == before
    assert len(list((tmp_path / "state/broadcaster/reports").glob("drill-*.json"))) == 1
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert drill(config).exit_code == 0
    assert len(list((tmp_path / "home/.local/state/broadcaster/reports").glob("*.html"))) == 1


def test_a_drill_with_a_misspelt_variable_says_which_file_cannot_be_rendered(tmp_path):
    config = drill_deployment(tmp_path)
    path = tmp_path / "templates/major_fire/warning/short.de.j2"
    path.write_text(path.read_text(encoding="utf-8").replace("location", "locaton"), "utf-8")
    out = tmp_path / "reports"
    result = drill(config, "--out", str(out))
    assert result.exit_code == 1, result.output
    detail = "cannot be rendered: templates/major_fire/warning/short.de.j2: 'locaton' is undefined"
    assert "refused (template_not_approved)" in result.output
    assert detail in result.output
    [json_path] = out.glob("*.json")
    report = json.loads(json_path.read_text(encoding="utf-8"))
    assert report["outcome"] == "template_not_approved"
    assert detail in report["detail"]
    assert report["alert_id"].startswith("DRILL-")


async def test_retraction_of_a_drill_is_marked_as_exercise(tmp_path, mosquitto, watcher, hooks):
    test_account = hooks[0]
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook_test": webhook(test_account.url)}
    )
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("DR-RETRACT", mode="drill"))
        await watcher.alert_in("DR-RETRACT", "sent")
        async with http.post(
            f"http://{daemon.settings.http.listen}/api/alerts/DR-RETRACT/retract",
            json={"reason": "Übungsende"},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as r:
            assert r.status == 202
        await watcher.alert_in("DR-RETRACT:retraction", "sent")
    correction = next(p.json for p in test_account.posts if p.json["kind"] == "retraction")
    assert correction["mode"] == "drill"
    assert correction["text"].startswith(PREFIXES)
