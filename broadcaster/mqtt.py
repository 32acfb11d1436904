"""The daemon's MQTT session: trigger intake, published state, reconnects, last will.

Intake subscriptions use QoS 1 on a persistent session (MQTT 3.1.1, clean_session=False,
a fixed client id), so the broker queues triggers published while the daemon is away.

Where a trigger could be lost: aiomqtt acknowledges a QoS 1 message as soon as paho
queues it, before our code sees it. We switch paho to manual acknowledgement and send
the PUBACK only after the trigger's raw bytes are committed to the store's inbox. A
crash before that commit leaves the message unacknowledged, and the broker delivers it
again when the daemon reconnects; a crash after it leaves it in the inbox, which the
restarted daemon handles. So the window between the broker's acknowledgement and the
store's write is closed: the acknowledgement comes after the write.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import structlog
from amqtt.broker import Broker

from broadcaster.config import MqttSettings
from broadcaster.models import Alert, Delivery

log = structlog.get_logger(__name__)

OnMessage = Callable[[str, bytes], Awaitable[None]]
OnConnect = Callable[[], Awaitable[None]]


class Topics:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.trigger = f"{prefix}/trigger"
        self.retract = f"{prefix}/retract"
        self.daemon = f"{prefix}/daemon"
        self.errors = f"{prefix}/errors"

    def alert(self, alert_id: str) -> str:
        return f"{self.prefix}/alerts/{alert_id}"


def broker_address(settings: MqttSettings) -> tuple[str, int, bool]:
    """(host, port, tls) of the broker; the embedded one when no url is set."""
    if settings.url is None:
        host, _, port = settings.embedded_listen.rpartition(":")
        return host, int(port), False
    parts = urlsplit(settings.url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls


def make_client(
    settings: MqttSettings, *, identifier: str | None = None, **extra: Any
) -> aiomqtt.Client:
    host, port, tls = broker_address(settings)
    return aiomqtt.Client(
        host,
        port,
        username=settings.username,
        password=settings.password,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_context=ssl.create_default_context() if tls else None,
        timeout=10,
        **extra,
    )


class MqttLink:
    def __init__(
        self, settings: MqttSettings, on_message: OnMessage, on_connect: OnConnect
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.on_message = on_message
        self.on_connect = on_connect
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()  # set while there is no session
        self.disconnected.set()
        self.client: aiomqtt.Client | None = None
        self.intake_open = True
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name="mqtt")

    def new_client(self) -> aiomqtt.Client:
        client = make_client(
            self.settings,
            identifier=self.settings.client_id,
            clean_session=False,  # the broker keeps our subscriptions and queued triggers
            keepalive=30,
            will=aiomqtt.Will(self.topics.daemon, "offline", qos=1, retain=True),
        )
        # PUBACK only after the trigger is in the store (see the module docstring).
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        backoff = 0.5
        while True:
            client = self.new_client()
            try:
                async with client:
                    self.client = client
                    await client.subscribe([(self.topics.trigger, 1), (self.topics.retract, 1)])
                    # "online" means ready: only once the subscriptions stand.
                    await client.publish(self.topics.daemon, "online", qos=1, retain=True)
                    self.connected.set()
                    self.disconnected.clear()
                    backoff = 0.5
                    log.info("mqtt_connected", broker=broker_address(self.settings)[:2])
                    await self.on_connect()
                    async for message in client.messages:
                        if not self.intake_open:
                            continue  # shutting down: unacknowledged, so the broker keeps it
                        payload = message.payload
                        raw = payload if isinstance(payload, bytes) else str(payload).encode()
                        await self.on_message(str(message.topic), raw)
                        client._client.ack(message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                log.warning("mqtt_disconnected", error=str(exc), retry_in=round(backoff, 2))
            finally:
                self.connected.clear()
                self.disconnected.set()
                self.client = None
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0) + 0.1)  # reconnect backoff
            backoff = min(backoff * 2, 30.0)

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> bool:
        client = self.client
        if client is None or not self.connected.is_set():
            log.warning("mqtt_publish_skipped", topic=topic, reason="not connected")
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain)
        except aiomqtt.MqttError as exc:
            log.warning("mqtt_publish_failed", topic=topic, error=str(exc))
            return False
        return True

    async def stop(self) -> None:
        """Publish `offline` and disconnect; the session and its queue stay at the broker."""
        self.intake_open = False
        await self.publish(self.topics.daemon, "offline", retain=True)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class MqttPublisher:
    """The event sink that tells MQTT: retained alert state, refusals on errors."""

    def __init__(self, link: MqttLink) -> None:
        self.link = link

    async def alert_changed(self, alert: Alert, deliveries: list[Delivery]) -> None:
        body = json.dumps(alert.public(deliveries), ensure_ascii=False)
        await self.link.publish(self.link.topics.alert(alert.id), body, retain=True)

    async def refused(self, refusal: dict[str, Any]) -> None:
        await self.link.publish(self.link.topics.errors, json.dumps(refusal, ensure_ascii=False))


async def start_embedded_broker(listen: str) -> Broker:
    """amqtt on `listen` (127.0.0.1:1883 by default), anonymous, for trials without a broker."""
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": listen}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
    )
    await broker.start()
    log.info("embedded_broker_started", listen=listen)
    return broker
