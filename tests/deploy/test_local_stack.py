"""deploy/local-stack.sh, the production topology without Docker: `up` starts mosquitto
with accounts and the ACL, Redis and two daemons; a trigger from the fire brigade's
account goes out (released by the duty officer's link, which the log channel carries);
the same account cannot publish an alert's state; an anonymous client is refused; `down`
leaves nothing running."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from broadcaster.triggering import build_trigger
from tests.integration.harness import FIRE
from tests.servers import REPO, free_port

SCRIPT = REPO / "deploy" / "local-stack.sh"
LINK = re.compile(r'"confirm_url": "([^"]+)"')


def run(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=120
    )


def credentials(folder: Path) -> dict[str, str]:
    lines = (folder / "credentials.env").read_text(encoding="utf-8").splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key: value.strip('"') for key, value in pairs}


def stack_env(folder: Path) -> dict[str, str]:
    """The script's environment: its folder and free loopback ports for every process."""
    return {
        **os.environ,
        "LOCAL_STACK_DIR": str(folder),
        "LOCAL_STACK_MQTT_PORT": str(free_port()),
        "LOCAL_STACK_REDIS_PORT": str(free_port()),
        "LOCAL_STACK_REPLICA_PORT": str(free_port()),
        "LOCAL_STACK_SENTINEL_PORTS": f"{free_port()} {free_port()} {free_port()}",
        "LOCAL_STACK_HTTP_PORTS": f"{free_port()} {free_port()}",
    }


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    folder = tmp_path / "stack"
    env = stack_env(folder)
    started = run(env, "up")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield env, folder
    finally:
        run(env, "down")


def client(env: dict[str, str], **login: Any) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", int(env["LOCAL_STACK_MQTT_PORT"]), timeout=10, **login)


async def confirm_link(folder: Path, alert_id: str) -> str:
    """The duty officer's link, from whichever daemon took the trigger (its log channel)."""
    async with asyncio.timeout(30):  # a safety net; the loop polls the daemons' logs
        while True:
            for log in folder.glob("daemon-*.log"):
                for line in log.read_text(encoding="utf-8").splitlines():
                    if '"channel_log"' in line and alert_id in line and (m := LINK.search(line)):
                        return m.group(1)
            await asyncio.sleep(0.1)


async def states(messages: aiomqtt.client.MessagesIterator, alert_id: str, state: str) -> list[str]:
    """Every alert topic seen until `alert_id` reaches `state`."""
    seen = []
    async with asyncio.timeout(30):
        async for message in messages:
            seen.append(str(message.topic))
            body = json.loads(message.payload) if message.payload else {}
            if str(message.topic).endswith(f"/alerts/{alert_id}") and body.get("state") == state:
                return seen
    return seen


async def test_the_stack_takes_the_fire_brigades_trigger_and_nothing_else(stack) -> None:
    env, folder = stack
    secrets = credentials(folder)
    fire = {"username": "firebrigade", "password": secrets["FIREBRIGADE_PASSWORD"]}
    status = run(env, "status")
    assert status.returncode == 0
    assert status.stdout.count(": running") == 8  # broker, 2 redis, 3 sentinels, 2 daemons

    async with client(env, **fire) as listener, client(env, **fire) as publisher:
        await listener.subscribe("broadcaster/alerts/#", qos=1)
        # A forged state first: the ACL drops it; the real trigger's state comes after.
        forged = {"alert_id": "FW-FORGED", "state": "sent"}
        await publisher.publish("broadcaster/alerts/FW-FORGED", json.dumps(forged), qos=1)
        trigger = build_trigger(
            "major_fire", "live", FIRE, alert_id="FW-LS-1", secret=secrets["TRIGGER_SECRET"]
        )
        await publisher.publish("broadcaster/trigger", json.dumps(trigger), qos=1)
        link = await confirm_link(folder, "FW-LS-1")
        async with aiohttp.ClientSession() as http:
            async with http.get(link) as page:
                assert page.status == 200
            async with http.post(link, data={"action": "release"}) as released:
                assert released.status == 200
        seen = await states(listener.messages, "FW-LS-1", "sent")
    assert "broadcaster/alerts/FW-FORGED" not in seen
    assert "broadcaster/alerts/FW-LS-1" in seen

    with pytest.raises(aiomqtt.MqttError):  # no account, no entry
        async with client(env):
            pass
    wrong = {"username": "firebrigade", "password": "not-the-password"}
    with pytest.raises(aiomqtt.MqttError):
        async with client(env, **wrong):
            pass


async def test_down_leaves_nothing_running(tmp_path: Path) -> None:
    folder = tmp_path / "stack"
    env = stack_env(folder)
    started = await asyncio.to_thread(run, env, "up")
    assert started.returncode == 0, started.stdout + started.stderr
    pids = [int(p.read_text()) for p in folder.glob("*.pid")]
    assert len(pids) == 8
    stopped = await asyncio.to_thread(run, env, "down")
    assert stopped.returncode == 0
    assert list(folder.glob("*.pid")) == []
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    assert alive == []
    after = await asyncio.to_thread(run, env, "status")
    assert after.returncode == 1
    assert ": running" not in after.stdout
