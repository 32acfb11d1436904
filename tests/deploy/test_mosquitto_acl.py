"""The broker of deploy/compose.yaml, run for real: Debian's mosquitto with the shipped
compose.conf and ACL, and a password file made with mosquitto_passwd as at install.

The prefix is the ACL's own, the default `broadcaster`. "Not delivered" is shown without
waiting for time to pass: after the refused publish, an allowed one follows on the same
topic tree, and the subscriber must get that one first (mosquitto handles the publishes
in order and queues what a subscriber gets in that order).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml

from tests.servers import REPO, MosquittoServer, mosquitto_password_file, start_mosquitto_with

DEPLOY = REPO / "deploy"
PREFIX = "broadcaster"
FIRE, DAEMON = "firebrigade", "broadcaster"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[MosquittoServer, dict[str, str]]]:
    passwords = {FIRE: secrets.token_hex(16), DAEMON: secrets.token_hex(16)}
    passwd = mosquitto_password_file(tmp_path / "passwd", passwords)
    server = start_mosquitto_with(
        DEPLOY / "mosquitto" / "compose.conf",
        tmp_path,
        {"password_file": passwd, "acl_file": DEPLOY / "mosquitto" / "acl"},
    )
    yield server, passwords
    server.stop()


def client(
    server: MosquittoServer, user: str | None = None, password: str | None = None
) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        server.port,
        username=user,
        password=password,
        identifier=f"test-{secrets.token_hex(4)}",
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=10,
    )


async def first(messages: aiomqtt.Client) -> tuple[str, bytes]:
    async with asyncio.timeout(10):
        message = await anext(messages.messages)
    assert isinstance(message.payload, bytes)
    return str(message.topic), message.payload


async def test_fire_brigade_triggers_and_the_daemons_receive(broker) -> None:
    server, pw = broker
    async with client(server, DAEMON, pw[DAEMON]) as daemon:
        await daemon.subscribe([(f"{PREFIX}/trigger", 1), (f"{PREFIX}/retract", 1)])
        async with client(server, FIRE, pw[FIRE]) as fire:
            await fire.publish(f"{PREFIX}/trigger", b'{"id": "T-1"}', qos=1)
            assert await first(daemon) == (f"{PREFIX}/trigger", b'{"id": "T-1"}')
            await fire.publish(f"{PREFIX}/retract", b'{"alert_id": "T-1"}', qos=1)
            assert await first(daemon) == (f"{PREFIX}/retract", b'{"alert_id": "T-1"}')


@pytest.mark.parametrize(
    ("watching", "forger", "topic", "allowed"),
    [
        # The fire brigade may not forge an alert's state...
        (FIRE, FIRE, f"{PREFIX}/alerts/x", DAEMON),
        # ...and the daemons may not trigger (only the dispatch system does).
        (DAEMON, DAEMON, f"{PREFIX}/trigger", FIRE),
    ],
)
async def test_a_refused_publish_is_not_delivered(broker, watching, forger, topic, allowed):
    server, pw = broker
    async with client(server, watching, pw[watching]) as watcher:
        await watcher.subscribe(topic, qos=1)
        async with client(server, forger, pw[forger]) as publisher:
            await publisher.publish(topic, b"refused", qos=1)
        async with client(server, allowed, pw[allowed]) as publisher:
            await publisher.publish(topic, b"allowed", qos=1)
        # The refused one, had it been let through, would have come first.
        assert await first(watcher) == (topic, b"allowed")


@pytest.mark.parametrize(
    ("user", "password"), [(None, None), (FIRE, "wrong password"), ("nobody", "x" * 16)]
)
async def test_anonymous_and_unknown_clients_are_refused(broker, user, password) -> None:
    server, _ = broker
    with pytest.raises(aiomqtt.MqttError, match=r"[Nn]ot authori[sz]ed"):
        async with client(server, user, password):
            pass


def test_the_compose_health_check_passes_against_this_broker(broker) -> None:
    """The mosquitto service's health check, run as written, with the test's port."""
    server, pw = broker
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    kind, command = compose["services"]["mosquitto"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    assert "-p 1883" in command
    # Compose turns $$ into $ before the shell sees it.
    command = command.replace("$$", "$").replace("-p 1883", f"-p {server.port}")
    env = {**os.environ, "MQTT_PASSWORD": pw[DAEMON]}
    result = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"mosquitto version 2.")
    # And with a wrong password it fails: the check is not satisfied by any answer.
    env["MQTT_PASSWORD"] = "wrong"
    wrong = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=30)
    assert wrong.returncode != 0, shlex.join(["sh", "-c", command])
