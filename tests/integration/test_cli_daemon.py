"""`broadcaster trigger` and `broadcaster status` against a running daemon."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from broadcaster.cli import app
from tests.integration.harness import running_daemon, webhook, write_deployment

runner = CliRunner()


async def invoke(*args: str):
    return await asyncio.to_thread(runner.invoke, app, list(args))


async def test_trigger_publishes_a_signed_trigger_and_status_shows_the_outcome(
    tmp_path, mosquitto, watcher, hooks
):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook_a": webhook(hooks[0].url)}
    )
    async with running_daemon(config):
        result = await invoke(
            "trigger",
            "major_fire",
            "--mode",
            "live",
            "--id",
            "CLI-1",
            "-p",
            "location=Ackerstraße 12",
            "-p",
            "district=Flingern-Nord",
            "--config",
            str(config),
        )
        assert result.exit_code == 0, result.output
        assert "published signed trigger CLI-1 (major_fire, live) on bc/trigger" in result.output
        await watcher.alert_in("CLI-1", "sent")
    assert hooks[0].posts[0].json["alert_id"] == "CLI-1"
    listing = await invoke("status", "--config", str(config))
    assert listing.exit_code == 0, listing.output
    assert "CLI-1" in listing.output and "sent" in listing.output and "1/1 sent" in listing.output
    detail = await invoke("status", "CLI-1", "--config", str(config))
    assert detail.exit_code == 0, detail.output
    assert "hook_a" in detail.output and "delivered" in detail.output
    missing = await invoke("status", "NOPE", "--config", str(config))
    assert missing.exit_code == 1 and "no alert 'NOPE'" in missing.output


async def test_trigger_refuses_a_missing_mode_and_names_an_unreachable_broker(tmp_path):
    config = write_deployment(tmp_path, mqtt_url="mqtt://127.0.0.1:9", channels={})
    no_mode = await invoke("trigger", "major_fire", "--config", str(config))
    assert no_mode.exit_code == 2 and "--mode" in no_mode.output
    bad_mode = await invoke("trigger", "major_fire", "--mode", "test", "--config", str(config))
    assert bad_mode.exit_code == 2 and "live or drill" in bad_mode.output
    down = await invoke("trigger", "major_fire", "--mode", "drill", "--config", str(config))
    assert down.exit_code == 1 and "could not publish to ('127.0.0.1', 9)" in down.output


async def test_retract_publishes_a_signed_retraction(tmp_path, mosquitto, watcher, hooks):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook_a": webhook(hooks[0].url)}
    )
    async with running_daemon(config):
        result = await invoke(
            "trigger",
            "major_fire",
            "--mode",
            "live",
            "--id",
            "CLI-R",
            "-p",
            "location=Ackerstraße 12",
            "-p",
            "district=Flingern-Nord",
            "--config",
            str(config),
        )
        assert result.exit_code == 0, result.output
        await watcher.alert_in("CLI-R", "sent")
        result = await invoke("retract", "CLI-R", "--reason", "Fehlalarm", "--config", str(config))
        assert result.exit_code == 0, result.output
        assert "published retraction of CLI-R on bc/retract" in result.output
        await watcher.alert_in("CLI-R", "retracted")
        await watcher.alert_in("CLI-R:retraction", "sent")
    kinds = [r.json["kind"] for r in hooks[0].requests]
    assert kinds == ["alert", "retraction", "deletion"]
