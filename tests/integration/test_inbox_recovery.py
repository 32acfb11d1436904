"""What a crash left in the inbox is handled at the next start, and its refusals are
published (the daemon waits for MQTT before that first look)."""

from __future__ import annotations

import json

from broadcaster.deployment import load_deployment
from broadcaster.models import InboxEntry
from broadcaster.store import open_store
from tests.integration.harness import (
    Watcher,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)
from tests.servers import MosquittoServer


async def test_entries_left_in_the_inbox_are_handled_and_refusals_published(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, hooks
):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"hook": webhook(hooks[0].url)}
    )
    deployment = load_deployment(config)
    store = open_store(deployment.settings.store.url, deployment.base_dir)
    await store.open()
    good = json.dumps(signed_trigger("FW-LEFT-1")).encode()
    bad = json.dumps(signed_trigger("FW-LEFT-2", scenario="tsunami")).encode()
    # Written by a daemon that died before handling them (its claim long expired).
    for payload in (good, bad):
        await store.inbox_add(InboxEntry.new("trigger", "mqtt", payload, owner="gone:1:x"))
    await store.close()
    async with running_daemon(config):
        alert = await watcher.alert_in("FW-LEFT-1", "sent")
        error = await watcher.error_for("FW-LEFT-2", "unknown_scenario")
    assert alert["deliveries"]["hook"]["state"] == "delivered"
    assert "tsunami" in error["detail"]
    assert len(hooks[0].posts) == 1
