"""`broadcaster trigger`, `retract` and `status` against a running daemon: every command
that sends prints the daemon's verdict and exits 0 (accepted), 2 (refused) or 3 (no
verdict in time)."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from broadcaster.cli import app
from tests.integration.harness import running_daemon, webhook, write_deployment

runner = CliRunner()
FIRE = ("-p", "location=Ackerstraße 12", "-p", "district=Flingern-Nord")


async def invoke(*args: str):
    return await asyncio.to_thread(runner.invoke, app, list(args))


async def trigger(config, *args: str):
    return await invoke("trigger", *args, "--config", str(config))


async def test_an_accepted_trigger_exits_0_and_status_shows_the_outcome(
    tmp_path, mosquitto, watcher, hooks
):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook_a": webhook(hooks[0].url)}
    )
    async with running_daemon(config):
        result = await trigger(config, "major_fire", "--mode", "live", "--id", "CLI-1", *FIRE)
        assert result.exit_code == 0, result.output
        assert "ACCEPTED CLI-1 (major_fire/warning, LIVE): " in result.output
        await watcher.alert_in("CLI-1", "sent")
    assert hooks[0].posts[0].json["alert_id"] == "CLI-1"
    listing = await invoke("status", "--config", str(config))
    assert listing.exit_code == 0, listing.output
    assert "CLI-1" in listing.output
    assert "sent" in listing.output
    assert "1/1 sent" in listing.output
    detail = await invoke("status", "CLI-1", "--config", str(config))
    assert detail.exit_code == 0, detail.output
    assert "hook_a" in detail.output
    assert "delivered" in detail.output
    missing = await invoke("status", "NOPE", "--config", str(config))
    assert missing.exit_code == 1
    assert "no alert 'NOPE'" in missing.output


async def test_every_refusal_exits_2_with_its_code_and_detail(tmp_path, mosquitto, hooks):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook_a": webhook(hooks[0].url)}
    )
    async with running_daemon(config):
        cases = {
            "unknown_scenario": ("tsunami", "--mode", "live", "--id", "CLI-U", *FIRE),
            "unknown_stage": ("major_fire", "--mode", "live", "--stage", "x", "--id", "CLI-S"),
            "invalid_params": ("major_fire", "--mode", "live", "--id", "CLI-P", "-p", "locaton=x"),
        }
        for code, args in cases.items():
            result = await trigger(config, *args)
            assert result.exit_code == 2, (code, result.output)
            assert f"REFUSED {args[args.index('--id') + 1]}: {code}: " in result.output
        first = await trigger(config, "major_fire", "--mode", "drill", "--id", "CLI-D", *FIRE)
        assert first.exit_code == 0, first.output
        again = await trigger(config, "major_fire", "--mode", "drill", "--id", "CLI-D", *FIRE)
        assert again.exit_code == 2
        assert "REFUSED CLI-D: duplicate: " in again.output
        listing = await invoke("status", "--refused", "--config", str(config))
    assert listing.exit_code == 0, listing.output
    for code in cases:  # kept and listed; the duplicate is in its alert's trail instead
        assert code in listing.output
    assert "duplicate" not in listing.output
    assert [p.json["alert_id"] for p in hooks[0].posts] == ["CLI-D"]


async def test_no_verdict_in_time_exits_3_and_no_wait_exits_0(tmp_path, mosquitto):
    """The broker is up, but no daemon listens."""
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={})
    silent = await trigger(config, "major_fire", "--mode", "drill", "--wait", "1s", *FIRE)
    assert silent.exit_code == 3, silent.output
    assert "NO VERDICT" in silent.output
    assert "within 1s" in silent.output
    fire_and_forget = await trigger(config, "major_fire", "--mode", "drill", "--no-wait", *FIRE)
    assert fire_and_forget.exit_code == 0
    assert "not waiting" in fire_and_forget.output


async def test_trigger_refuses_a_missing_mode_and_names_an_unreachable_broker(tmp_path):
    config = write_deployment(tmp_path, mqtt_url="mqtt://127.0.0.1:9", channels={})
    no_mode = await invoke("trigger", "major_fire", "--config", str(config))
    assert no_mode.exit_code == 2
    assert "--mode" in no_mode.output
    bad_mode = await invoke("trigger", "major_fire", "--mode", "test", "--config", str(config))
    assert bad_mode.exit_code == 2
    assert "live or drill" in bad_mode.output
    down = await invoke("trigger", "major_fire", "--mode", "drill", "--config", str(config))
    assert down.exit_code == 1
    assert "could not publish to ('127.0.0.1', 9)" in down.output


async def test_retract_waits_for_the_verdict(tmp_path, mosquitto, watcher, hooks):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook_a": webhook(hooks[0].url)}
    )

    async def retract(alert_id: str):
        return await invoke("retract", alert_id, "--reason", "Fehlalarm", "--config", str(config))

    async with running_daemon(config):
        result = await trigger(config, "major_fire", "--mode", "live", "--id", "CLI-R", *FIRE)
        assert result.exit_code == 0, result.output
        await watcher.alert_in("CLI-R", "sent")
        done = await retract("CLI-R")
        assert done.exit_code == 0, done.output
        assert "ACCEPTED CLI-R" in done.output
        assert ": retracted" in done.output
        await watcher.alert_in("CLI-R:retraction", "sent")
        again = await retract("CLI-R")
        assert again.exit_code == 2, again.output
        assert "cannot retract" in again.output, again.output
        unknown = await retract("CLI-NONE")
        assert unknown.exit_code == 2, unknown.output
        assert "no alert" in unknown.output, unknown.output
    kinds = [r.json["kind"] for r in hooks[0].requests]
    assert kinds == ["alert", "retraction", "deletion"]
