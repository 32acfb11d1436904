"""Triggers queued at the broker for an absent daemon survive a kill -9 of mosquitto when it
runs the shipped deploy/mosquitto/mosquitto.conf, and are lost with `persistence true` alone.

The daemon connects once (so its session and subscriptions exist at the broker), stops, and
ten triggers are published while it is away; then mosquitto is killed, restarted from the
same files, and the daemon started again. Only the fixed client id matters here, not the
MQTT version the daemon speaks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt

from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    Watcher,
    publish,
    signed_trigger,
    watching,
    webhook,
    write_deployment,
)
from tests.integration.test_crash import onlines, start_daemon, start_then_sigterm
from tests.servers import MosquittoServer, start_mosquitto

QUEUED = [f"FW-QUEUED-{n:02}" for n in range(10)]
MARKER = "FW-AFTER-RESTART"
FINAL = ("sent", "partially_failed", "failed")


async def round_trip(url: str) -> None:
    """One CONNECT/CONNACK on a new connection.

    mosquitto answers a PUBLISH with its PUBACK at once and saves its database at the end
    of that pass of its event loop; a new connection's CONNECT is read in a later pass, so
    its CONNACK means the save after the last trigger is done (no waiting on the clock)."""
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)):
        pass


@asynccontextmanager
async def explained(log: Path, broker: MosquittoServer) -> AsyncIterator[None]:
    """A wait that times out fails with what the daemon and the broker logged."""
    try:
        yield
    except TimeoutError as exc:
        logs = f"daemon:\n{log.read_text()}\nmosquitto:\n{broker.log.read_text()}"
        raise AssertionError(logs) from exc


async def queue_then_kill_broker(
    tmp_path: Path, fake: FakeWebhook, omit: Collection[str]
) -> Watcher:
    """The whole scenario; returns the watcher of the restarted broker once the daemon has
    handled MARKER, a trigger published after the restart (so behind any queued one)."""
    folder = tmp_path / "broker"
    folder.mkdir()
    broker = start_mosquitto(folder, sample=True, omit=omit)
    config = write_deployment(
        tmp_path,
        mqtt_url=broker.url,
        channels={"hook": webhook(fake.url)},
        client_id="broadcaster-durability-test",
    )
    log = tmp_path / "daemon.log"
    try:
        async with explained(log, broker), watching(broker.url) as before:
            await start_then_sigterm(config, log, before)
            for alert_id in QUEUED:
                await publish(broker.url, "bc/trigger", signed_trigger(alert_id))
        await round_trip(broker.url)
        broker.kill()
        broker.restart()

        after: Watcher
        async with explained(log, broker), watching(broker.url) as after:
            daemon = start_daemon(config, log)
            try:
                # A fresh watcher: a retained value here is the stopped daemon's "offline".
                await after.wait_for(lambda: onlines(after) >= 1)
                await publish(broker.url, "bc/trigger", signed_trigger(MARKER))
                await after.alert_in(MARKER, *FINAL)
                if not omit:
                    for alert_id in QUEUED:
                        await after.alert_in(alert_id, *FINAL)
            finally:
                daemon.kill()
                daemon.wait(10)
        return after
    finally:
        broker.stop()


def posted_alert_ids(fake: FakeWebhook) -> list[str]:
    return [str(post.json["alert_id"]) for post in fake.posts]


async def test_queued_triggers_survive_a_broker_kill_with_the_shipped_config(
    tmp_path: Path, hooks: list[FakeWebhook]
) -> None:
    fake = hooks[0]
    watcher = await queue_then_kill_broker(tmp_path, fake, omit=())
    for alert_id in QUEUED:
        alert = watcher.alert(alert_id)
        assert alert is not None
        assert alert["state"] == "sent", alert
    # Exactly once: one accepted post per trigger, and no request was a retry or replay.
    ids = posted_alert_ids(fake)
    assert len(ids) == len(QUEUED) + 1
    assert sorted(ids) == sorted([*QUEUED, MARKER])
    assert len(fake.requests) == len(fake.posts)


async def test_persistence_alone_loses_every_queued_trigger_on_a_broker_kill(
    tmp_path: Path, hooks: list[FakeWebhook]
) -> None:
    # Without the autosave lines mosquitto saves every 1800 s or on a clean exit: nothing of
    # the session or its queue is on disk at the kill, so none of the ten can come back.
    fake = hooks[0]
    watcher = await queue_then_kill_broker(
        tmp_path, fake, omit=("autosave_on_changes", "autosave_interval")
    )
    marker = watcher.alert(MARKER)
    assert marker is not None
    assert marker["state"] == "sent"  # daemon and broker work; the queue is what was lost
    assert posted_alert_ids(fake) == [MARKER]
    assert all(watcher.alert(alert_id) is None for alert_id in QUEUED)
