"""What the MQTT session promises, checked against the real mosquitto and aiomqtt:

- the acknowledgement (PUBACK) goes to the broker only after the trigger is in the store,
  so a daemon that dies in between gets the trigger again; this reaches into aiomqtt's
  paho client (`_client.manual_ack_set`, `_client.ack`), so a new aiomqtt that moves it
  must fail here;
- why several daemons do not use a shared subscription: mosquitto queues a share of the
  triggers into the persistent session of a member that is away (a dead daemon), where
  they wait until it comes back.
"""

from __future__ import annotations

import asyncio
import signal
import socket

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broadcaster.config import MqttSettings
from broadcaster.mqtt import MqttLink
from tests.integration.cluster import Cluster, until_healthy
from tests.integration.harness import Watcher, publish_many, signed_trigger
from tests.servers import MosquittoServer, start_redis


def test_aiomqtt_still_lets_us_acknowledge_by_hand() -> None:
    async def check() -> None:
        client = aiomqtt.Client("127.0.0.1", 1)
        assert callable(client._client.manual_ack_set)
        assert callable(client._client.ack)

    asyncio.run(check())


async def test_the_acknowledgement_waits_for_the_store(
    tmp_path, mosquitto: MosquittoServer, watcher: Watcher, hooks
):
    redis = start_redis(tmp_path, durable=True)
    cluster = Cluster(tmp_path, mosquitto.url, redis.url, hooks, delivery={})
    node = cluster.start(cluster.add("d0"))
    try:
        await until_healthy(node)
        redis.process.send_signal(signal.SIGSTOP)  # Redis hangs: the inbox write waits
        await publish_many(mosquitto.url, "bc/trigger", [signed_trigger("FW-PUBACK")])
        while "store_unreachable" not in [e.get("event") for e in node.events()]:
            await asyncio.sleep(0.05)  # polling the daemon's log for its inbox write
        cluster.kill(node)  # it holds the trigger, unacknowledged
        redis.process.send_signal(signal.SIGCONT)
        cluster.start(node)
        alert = await watcher.alert_in("FW-PUBACK", "sent", timeout=30)
    finally:
        redis.process.send_signal(signal.SIGCONT)
        cluster.stop_all()
        redis.stop()
    assert alert["state"] == "sent"
    assert [len(h.posts) for h in hooks] == [1, 1, 1]


async def test_mosquitto_queues_shared_triggers_for_a_member_that_is_away(
    mosquitto: MosquittoServer,
):
    host, port = mosquitto.url.removeprefix("mqtt://").split(":")

    def member(name: str) -> aiomqtt.Client:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        return aiomqtt.Client(
            host,
            int(port),
            identifier=name,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
        )

    async with member("away") as away:
        await away.subscribe("$share/daemons/bc/trigger", qos=1)
    # "away" is gone now (a dead daemon), its session kept; "here" stays.
    received: list[bytes] = []
    async with member("here") as here:
        await here.subscribe("$share/daemons/bc/trigger", qos=1)
        await here.subscribe("bc/marker", qos=1)
        async with aiomqtt.Client(host, int(port)) as publisher:
            for n in range(10):
                await publisher.publish("bc/trigger", f"T{n}", qos=1)
            await publisher.publish("bc/marker", "end", qos=1)  # after them, in order
        async for message in here.messages:
            if str(message.topic) == "bc/marker":
                break
            assert isinstance(message.payload, bytes)
            received.append(message.payload)
    assert 0 < len(received) < 10  # the rest wait in the absent member's session


async def test_the_daemons_mqtt_socket_sends_small_packets_at_once(mosquitto: MosquittoServer):
    """A trigger's PUBACK and a state publish are small: Nagle's algorithm would hold
    each for the broker's delayed ACK (about 40 ms a hop)."""

    async def ignore(*_: object) -> None:
        return None

    link = MqttLink(MqttSettings(url=mosquitto.url, client_id="nodelay"), ignore, ignore)
    async with link.new_client(mosquitto.url) as client:
        sock = client._client.socket()
        assert isinstance(sock, socket.socket)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
