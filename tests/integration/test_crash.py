"""A `kill -9` in the middle of a fan-out: the restarted daemon finishes the job, and no
provider that had answered gets the post again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import Watcher, publish, signed_trigger, webhook, write_deployment


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "broadcaster", "run", "--config", str(config), "--json-logs"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def start_with_one_hook(
    folder: Path, mqtt_url: str, hook_url: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """The daemon started on a deployment with one webhook channel; and its log file."""
    config = write_deployment(folder, mqtt_url=mqtt_url, channels={"hook_a": webhook(hook_url)})
    log = folder / "daemon.log"
    return start_daemon(config, log), log


def logged_events(log: Path) -> list[str]:
    return [json.loads(line)["event"] for line in log.read_text().splitlines() if line[:1] == "{"]


def onlines(watcher: Watcher) -> int:
    return sum(1 for t, p, _ in watcher.messages if t == "bc/daemon" and p == b"online")


async def start_then_sigterm(config: Path, log: Path, watcher: Watcher) -> None:
    """Run the daemon until it is online, then stop it gracefully; it must exit 0."""
    daemon = start_daemon(config, log)
    try:
        await watcher.wait_for(lambda: onlines(watcher) >= 1)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, log.read_text()
    finally:
        daemon.kill()


async def test_kill_9_mid_fan_out_then_restart_finishes_without_duplicates(
    tmp_path, mosquitto, watcher, hooks
):
    answered, held_b, held_c = hooks
    held_b.hold()
    held_c.hold()
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={
            "hook_a": webhook(answered.url),
            "hook_b": webhook(held_b.url),
            "hook_c": webhook(held_c.url),
        },
        client_id="broadcaster-crash-test",
    )
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        await watcher.wait_for(lambda: onlines(watcher) >= 1)
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-KILL9"))

        def mid_fan_out() -> bool:
            alert = watcher.alert("FW-KILL9")
            return bool(alert) and alert["deliveries"]["hook_a"]["state"] == "delivered"

        await watcher.wait_for(mid_fan_out)
        await held_b.wait_for_requests(1)
        await held_c.wait_for_requests(1)
        daemon.kill()  # SIGKILL: no shutdown code runs
        daemon.wait(10)
        # The providers answer after all: the posts exist, but the daemon never heard.
        held_b.release()
        held_c.release()
        await held_b.wait_for_answers(1)
        await held_c.wait_for_answers(1)

        before = onlines(watcher)
        daemon = start_daemon(config, log)
        await watcher.wait_for(lambda: onlines(watcher) > before)
        alert = await watcher.alert_in("FW-KILL9", "sent", "partially_failed", "failed")
    finally:
        daemon.kill()
        daemon.wait(10)
    assert alert["state"] == "sent", log.read_text()
    assert all(d["state"] == "delivered" for d in alert["deliveries"].values())
    # hook_a had answered before the crash: it never hears of the alert again.
    assert len(answered.requests) == 1
    assert alert["deliveries"]["hook_a"]["attempts"] == 1
    # hook_b and hook_c are asked again with the same idempotency key: one post each.
    for fake in (held_b, held_c):
        assert len(fake.posts) == 1
        assert len(fake.requests) == 2
        first, second = fake.requests
        assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    will = [p for t, p, _ in watcher.messages if t == "bc/daemon"]
    assert b"offline" in will  # the broker published the last will after the kill


async def test_sigterm_stops_gracefully_and_says_offline(tmp_path, mosquitto, watcher, hooks):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook_a": webhook(hooks[0].url)}
    )
    log = tmp_path / "daemon.log"
    await start_then_sigterm(config, log, watcher)
    await watcher.wait_for(
        lambda: [p for t, p, _ in watcher.messages if t == "bc/daemon"][-1] == b"offline"
    )
    events = logged_events(log)
    assert events.index("daemon_stopping") < events.index("daemon_stopped")


async def test_sighup_leaves_the_daemon_running_and_handling_triggers(
    tmp_path, mosquitto, watcher, hooks
):
    daemon, log = start_with_one_hook(tmp_path, mosquitto.url, hooks[0].url)
    try:
        await watcher.wait_for(lambda: onlines(watcher) >= 1)
        for n in (1, 2):
            daemon.send_signal(signal.SIGHUP)  # without a handler, SIGHUP ends the process
            await publish(mosquitto.url, "bc/trigger", signed_trigger(f"FW-HUP-{n}"))
            alert = await watcher.alert_in(f"FW-HUP-{n}", "sent", "partially_failed", "failed")
            assert alert["state"] == "sent"
            assert daemon.poll() is None, log.read_text()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, log.read_text()
    finally:
        daemon.kill()
        daemon.wait(10)
    assert len(hooks[0].posts) == 2
    events = logged_events(log)
    assert events.count("reload_requested") == 2
    assert events.count("daemon_started") == 1  # the same process throughout
    assert events.index("reload_requested") < events.index("daemon_stopping")
