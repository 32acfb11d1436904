"""Backups (issue 14): `broadcaster backup` of a running daemon's store mid-incident, the
daemon killed, `broadcaster restore` into a fresh deployment, and a fresh daemon there
finishing the incident without sending twice; `broadcaster audit --export` of the result.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from redis.asyncio import Redis
from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.models import AuditEntry, utcnow
from broadcaster.store.redis import RedisStore
from broadcaster.store.sqlite import SqliteStore
from tests.integration.harness import publish, signed_trigger, webhook, write_deployment
from tests.integration.test_crash import onlines, start_daemon
from tests.servers import RedisServer
from tests.store.helpers import T0

runner = CliRunner()
CLIENT_ID = "broadcaster-backup-test"  # the same in both deployments, as on a new machine
ALERT = "FW-BACKUP"


async def invoke(*args: str) -> Any:
    return await asyncio.to_thread(runner.invoke, app, list(args))


async def test_a_backup_mid_incident_restored_elsewhere_finishes_it_without_duplicates(
    tmp_path, mosquitto, watcher, hooks
):
    answered, held, _ = hooks
    held.hold()
    channels = {"hook_a": webhook(answered.url), "hook_b": webhook(held.url)}
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = write_deployment(
        tmp_path / "old", mqtt_url=mosquitto.url, channels=channels, client_id=CLIENT_ID
    )
    new = write_deployment(
        tmp_path / "new", mqtt_url=mosquitto.url, channels=channels, client_id=CLIENT_ID
    )
    copy = tmp_path / "backup.db"
    log = tmp_path / "daemon.log"
    daemon = start_daemon(old, log)
    try:
        await watcher.wait_for(lambda: onlines(watcher) >= 1)
        await publish(mosquitto.url, "bc/trigger", signed_trigger(ALERT))

        def mid_incident() -> bool:
            alert = watcher.alert(ALERT)
            return bool(alert) and alert["deliveries"]["hook_a"]["state"] == "delivered"

        await watcher.wait_for(mid_incident)
        await held.wait_for_requests(1)  # hook_b's delivery is in flight
        made = await invoke("backup", str(copy), "--config", str(old))
        assert made.exit_code == 0, made.output
        assert f"wrote {copy}: 1 alert(s), " in made.output
        again = await invoke("backup", str(copy), "--config", str(old))
        assert again.exit_code == 1
        assert "exists" in again.output
        assert "--force" in again.output
        # Not onto the store the daemon runs on, --force or not.
        onto_live = await invoke("restore", str(copy), "--force", "--config", str(old))
        assert onto_live.exit_code == 1
        assert "stop the daemon first" in onto_live.output
        daemon.kill()  # SIGKILL: the machine is gone
        daemon.wait(10)
    finally:
        daemon.kill()
        daemon.wait(10)
    # The provider answers after all: hook_b's post exists, but no daemon heard of it.
    held.release()
    await held.wait_for_answers(1)

    restored = await invoke("restore", str(copy), "--config", str(new))
    assert restored.exit_code == 0, restored.output
    assert "1 delivery claim(s) let go" in restored.output
    store = SqliteStore(tmp_path / "new" / "var" / "broadcaster.db")
    await store.open()
    try:
        in_copy = {d.channel_id: d for d in await store.get_deliveries(ALERT)}
        assert await store.lease_holder(f"mqtt-client:{CLIENT_ID}", utcnow()) is None
    finally:
        await store.close()
    assert in_copy["hook_a"].state == "delivered"
    assert in_copy["hook_b"].state == "sending"
    assert in_copy["hook_b"].claimed_by is None

    before = onlines(watcher)
    daemon = start_daemon(new, log)
    try:
        await watcher.wait_for(lambda: onlines(watcher) > before)
        alert = await watcher.alert_in(ALERT, "sent", "partially_failed", "failed")
    finally:
        daemon.kill()
        daemon.wait(10)
    assert alert["state"] == "sent", log.read_text()
    assert alert["deliveries"]["hook_a"]["attempts"] == 1
    assert len(answered.requests) == 1  # delivered before the backup: never asked again
    assert len(answered.posts) == 1
    # hook_b is asked again with the same idempotency key: still one post.
    assert len(held.posts) == 1
    assert len(held.requests) == 2
    first, second = held.requests
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]

    export = tmp_path / "audit.jsonl"
    exported = await invoke("audit", "--export", str(export), "--config", str(new))
    assert exported.exit_code == 0, exported.output
    lines = export.read_text(encoding="utf-8").splitlines()
    entries = [AuditEntry.model_validate_json(line) for line in lines]
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    store = SqliteStore(tmp_path / "new" / "var" / "broadcaster.db")
    await store.open()
    try:
        trail = await store.audit_trail(ALERT)
        unattached = await store.audit_trail()
    finally:
        await store.close()
    assert [e for e in entries if e.alert_id == ALERT] == trail
    assert len(entries) == len(trail) + len(unattached)
    # The trail goes on across the restore: hook_b's delivery by the fresh daemon is in it.
    delivered = [e for e in trail if e.detail.get("channel") == "hook_b" and e.event == "delivered"]
    assert len(delivered) == 1, [e.event for e in trail]


async def test_backup_and_restore_refuse_a_redis_store_and_say_what_to_do(
    tmp_path, redis_server: RedisServer
):
    config = write_deployment(
        tmp_path, mqtt_url="mqtt://127.0.0.1:1", channels={}, store_url=redis_server.url
    )
    copy = tmp_path / "backup.db"
    for args in (("backup", str(copy)), ("restore", str(copy))):
        result = await invoke(*args, "--config", str(config))
        assert result.exit_code == 1
        assert "Redis backs itself up" in result.output
        assert "appendonly yes" in result.output
        assert "docs/operations.md" in result.output
    assert not copy.exists()


async def test_restore_refuses_a_file_that_is_not_a_store(tmp_path):
    config = write_deployment(tmp_path, mqtt_url="mqtt://127.0.0.1:1", channels={})
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n", encoding="utf-8")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE alerts (id TEXT)")
    db.close()
    for file, why in ((text, "is not a SQLite database"), (other, "is not a broadcaster store")):
        result = await invoke("restore", str(file), "--force", "--config", str(config))
        assert result.exit_code == 1
        assert why in result.output
    assert not (tmp_path / "var" / "broadcaster.db").exists()  # nothing was created


async def test_audit_export_of_a_redis_store_is_its_whole_trail(
    tmp_path, redis_server: RedisServer
):
    url = f"redis://127.0.0.1:{redis_server.port}/7"  # a database of its own (default prefix)
    raw = Redis.from_url(url)
    await raw.flushdb()
    store = RedisStore(url)
    await store.open()
    try:
        written = [
            AuditEntry(at=T0, alert_id=ALERT, event="trigger_received"),
            AuditEntry(at=T0, alert_id=None, event="refused", detail={"error": "stale"}),
            AuditEntry(at=T0.replace(second=30), alert_id=ALERT, event="delivered"),
        ]
        for entry in written:
            await store.audit(entry)
        config = write_deployment(
            tmp_path, mqtt_url="mqtt://127.0.0.1:1", channels={}, store_url=url
        )
        result = await invoke("audit", "--export", "-", "--config", str(config))
    finally:
        await store.close()
        await raw.flushdb()
        await raw.aclose()
    assert result.exit_code == 0, result.output
    entries = [AuditEntry.model_validate_json(line) for line in result.stdout.splitlines()]
    assert len(entries) == 3
    assert entries[-1] == written[2]
    assert [e for e in entries if e.alert_id == ALERT] == [written[0], written[2]]
