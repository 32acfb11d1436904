"""The daemon's MQTT session: trigger intake, published state, reconnects, last will.

Intake subscriptions use QoS 1 on a persistent session, so the broker queues triggers
published while the daemon is away: MQTT 5 with Clean Start off and a session expiry
(`mqtt.session_expiry`), or MQTT 3.1.1 with clean_session=False for the embedded broker,
which speaks only 3.1.1; always with a fixed client id.

Several daemons share one broker: each subscribes on its own session and receives every
trigger; the store decides which one handles it (Store.inbox_add), so none is lost when
one dies. A shared subscription would not do: mosquitto 2 queues a share of the triggers
into a dead member's persistent session, where they wait until that daemon comes back
(tests/integration/test_broker_facts.py).

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
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import structlog
from amqtt.broker import Broker
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broadcaster.config import MqttSettings
from broadcaster.models import Alert, Delivery
from broadcaster.store.base import Store

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


def broker_address(settings: MqttSettings, url: str | None = None) -> tuple[str, int, bool]:
    """(host, port, tls) of the broker at `url` (by default the first one); the embedded
    one when no url is set (fallback_urls need url, so a missing url is no broker list)."""
    url = url or settings.url
    if url is None:
        host, _, port = settings.embedded_listen.rpartition(":")
        return host, int(port), False
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls


def tls_context(settings: MqttSettings) -> ssl.SSLContext:
    """The broker's certificate checked against `tls_ca_file` (else the system's CAs),
    its name against the URL's host; a client certificate when one is set."""
    context = ssl.create_default_context(
        cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None
    )
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
    return context


def tls_refusal(exc: BaseException, settings: MqttSettings, broker: str) -> str | None:
    """What to do when the TLS handshake with the broker failed, else None."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, ssl.SSLError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    ca = settings.tls_ca_file or "the system's CAs"
    return (
        f"TLS with the broker {broker} failed ({getattr(seen, 'reason', None) or seen}): its "
        f"certificate is not signed by {ca}, or is not made out to the URL's host. Set "
        "mqtt.tls_ca_file to the CA that signed the broker's certfile, and use the host "
        "name (or IP address) the certificate names"
    )


NO_DELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# MQTT 5's reason code when the broker dropped us for a newer connection with our client id.
SESSION_TAKEN_OVER = 142
# How long to stay away after that: two processes with one client id must not keep
# throwing each other off (the store's lease on the id normally prevents it).
TAKEN_OVER_BACKOFF = 30.0


def protocol_of(settings: MqttSettings) -> aiomqtt.ProtocolVersion:
    if settings.protocol == "3.1.1" or (settings.protocol is None and settings.url is None):
        return aiomqtt.ProtocolVersion.V311
    return aiomqtt.ProtocolVersion.V5


def make_client(
    settings: MqttSettings,
    *,
    identifier: str | None = None,
    url: str | None = None,
    **extra: Any,
) -> aiomqtt.Client:
    """A client of the broker at `url` (by default the first one)."""
    host, port, tls = broker_address(settings, url)
    return aiomqtt.Client(
        host,
        port,
        username=settings.username,
        password=settings.password,
        identifier=identifier,
        protocol=protocol_of(settings),
        tls_context=tls_context(settings) if tls else None,
        timeout=10,
        # A trigger and its PUBACK are small packets: without this, Nagle's algorithm and
        # the broker's delayed ACK hold each for about 40 ms.
        socket_options=[NO_DELAY],
        **extra,
    )


def persistent_session(settings: MqttSettings) -> dict[str, Any]:
    """The client options that make the broker keep our session and queue for it."""
    if protocol_of(settings) == aiomqtt.ProtocolVersion.V311:
        return {"clean_session": False}
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = int(settings.session_expiry.total_seconds())
    # Clean Start off on every connect, the first included: a restarted daemon must
    # find the triggers queued while it was away (aiomqtt's default cleans the first).
    return {"clean_start": False, "properties": properties}


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
        # Why the last attempt to connect failed (a TLS refusal says what to do), and an
        # event set after each failed attempt: /healthz says mqtt false meanwhile.
        self.last_error: str | None = None
        self.attempt_failed = asyncio.Event()

    def new_client(self, url: str | None) -> aiomqtt.Client:
        client = make_client(
            self.settings,
            url=url,
            identifier=self.settings.client_id,
            keepalive=30,
            will=aiomqtt.Will(self.topics.daemon, "offline", qos=1, retain=True),
            **persistent_session(self.settings),
        )
        # PUBACK only after the trigger is in the store (see the module docstring). This
        # reaches into aiomqtt's paho client; tests/integration/test_mqtt_session.py breaks
        # if a new aiomqtt moves it.
        client._client.manual_ack_set(True)
        return client

    async def open_standby(self, url: str | None) -> None:
        """Our session and subscriptions at a standby broker, then a clean disconnect: it
        queues what is published to it while we are on another (for `session_expiry`).
        What it delivers meanwhile stays unacknowledged, so it keeps that too."""
        host, port, _ = broker_address(self.settings, url)
        try:
            async with self.new_client(url) as client:
                await client.subscribe([(self.topics.trigger, 1), (self.topics.retract, 1)])
            log.info("mqtt_standby_session", broker=(host, port))
        except aiomqtt.MqttError as exc:
            log.warning("mqtt_standby_unreachable", broker=(host, port), error=str(exc))

    async def run(self) -> None:
        """Connected whenever a broker can be reached: when the one in use goes away, the
        next of `url` and `fallback_urls` at once, a pause only after a whole round. An
        error that is not MQTT's (the store gave up, a bug) ends the loop for the
        daemon's supervisor to handle."""
        brokers = self.settings.urls
        await asyncio.gather(*(self.open_standby(url) for url in brokers[1:]))
        backoff = 0.5
        turn = 0
        while True:
            url = brokers[turn % len(brokers)]
            host, port, _ = broker_address(self.settings, url)
            client = self.new_client(url)
            try:
                async with client:
                    self.client = client
                    await client.subscribe([(self.topics.trigger, 1), (self.topics.retract, 1)])
                    # "online" means ready: only once the subscriptions stand.
                    await client.publish(self.topics.daemon, "online", qos=1, retain=True)
                    self.connected.set()
                    self.disconnected.clear()
                    self.last_error = None
                    backoff = 0.5
                    log.info(
                        "mqtt_connected", broker=(host, port), client_id=self.settings.client_id
                    )
                    await self.on_connect()
                    async for message in client.messages:
                        if not self.intake_open:
                            continue  # shutting down: unacknowledged, so the broker keeps it
                        payload = message.payload
                        raw = payload if isinstance(payload, bytes) else str(payload).encode()
                        await self.on_message(str(message.topic), raw)
                        client._client.ack(message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                refusal = tls_refusal(exc, self.settings, f"{host}:{port}")
                self.last_error = refusal or str(exc)
                if getattr(getattr(exc, "rc", None), "value", None) == SESSION_TAKEN_OVER:
                    log.error(
                        "mqtt_client_id_in_use",
                        client_id=self.settings.client_id,
                        detail="another connection took over this client id; give each "
                        "daemon its own mqtt.client_id",
                    )
                    backoff = TAKEN_OVER_BACKOFF
                elif refusal is not None:
                    log.error("mqtt_tls_refused", broker=(host, port), detail=refusal)
                else:
                    log.warning(
                        "mqtt_disconnected",
                        broker=(host, port),
                        error=str(exc),
                        retry_in=round(backoff, 2),
                    )
                self.attempt_failed.set()
            finally:
                self.connected.clear()
                self.disconnected.set()
                self.client = None
            turn += 1
            if turn % len(brokers):
                continue  # the next broker at once
            await asyncio.sleep(backoff * random.uniform(0.5, 1.0) + 0.1)  # reconnect backoff
            backoff = min(backoff * 2, 30.0)

    async def publish(
        self, topic: str, payload: str | bytes, *, retain: bool = False, early: bool = False
    ) -> bool:
        """Publish with QoS 1; `early`: also while the session is still being set up."""
        client = self.client
        if client is None or not (early or self.connected.is_set()):
            log.warning("mqtt_publish_skipped", topic=topic, reason="not connected")
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain)
        except aiomqtt.MqttError as exc:
            log.warning("mqtt_publish_failed", topic=topic, error=str(exc))
            return False
        return True

    async def stop(self) -> None:
        """Stop taking triggers and publish `offline`; cancelling `run` disconnects, and
        the session and its queue stay at the broker."""
        self.intake_open = False
        # Also when a stop meets a session that is still coming up: it may have said
        # "online" already, and a graceful disconnect sends no last will.
        await self.publish(self.topics.daemon, "offline", retain=True, early=True)


def version(alert: Alert, deliveries: list[Delivery]) -> tuple[object, ...]:
    """What changes whenever the alert or one of its deliveries is written."""
    return (
        alert.updated_at,
        len(deliveries),
        max((d.updated_at for d in deliveries), default=None),
    )


class MqttPublisher:
    """The event sink that tells MQTT: retained alert state, refusals on errors.

    Several daemons publish the same alert's state, and their messages can reach the
    broker in another order than their reads of the store: the retained message would be
    an older state. So after each publish (acknowledged, so at the broker) the state is
    read again, and published again if it changed meanwhile; the last publisher to look
    leaves the latest state retained.
    """

    REPUBLISH = 3  # more changes than this while publishing: the next change publishes

    def __init__(self, link: MqttLink, store: Store | None = None) -> None:
        self.link = link
        self.store = store

    async def alert_changed(self, alert: Alert, deliveries: list[Delivery]) -> None:
        topic = self.link.topics.alert(alert.id)
        for _ in range(self.REPUBLISH):
            body = json.dumps(alert.public(deliveries), ensure_ascii=False)
            if not await self.link.publish(topic, body, retain=True) or self.store is None:
                return
            latest = await self.store.get_alert(alert.id)
            if latest is None:
                return
            latest_deliveries = await self.store.get_deliveries(alert.id)
            if version(latest, latest_deliveries) == version(alert, deliveries):
                return
            alert, deliveries = latest, latest_deliveries

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
