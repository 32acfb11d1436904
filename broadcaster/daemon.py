"""`broadcaster run`: wires MQTT, the store, the HTTP server and the dispatcher into one
asyncio process, and takes it down gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any, Literal

import aiohttp
import structlog
from aiohttp import web
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from broadcaster.cap import default_sender
from broadcaster.channels.base import Channel, ChannelError, OutgoingMessage, TransientError
from broadcaster.channels.registry import make_channel
from broadcaster.confirm import ConfirmDesk
from broadcaster.deployment import Deployment
from broadcaster.dispatch import Dispatcher
from broadcaster.events import Events
from broadcaster.metrics import Metrics
from broadcaster.models import InboxEntry
from broadcaster.mqtt import MqttLink, MqttPublisher, start_embedded_broker
from broadcaster.receiving import Receiver
from broadcaster.retraction import Retractor
from broadcaster.store import open_store
from broadcaster.web.api import WebState, make_app
from broadcaster.web.cap import add_cap_routes
from broadcaster.web.confirm import ConfirmState, add_confirm_routes

log = structlog.get_logger(__name__)


class Daemon:
    def __init__(self, deployment: Deployment, *, dry_run: bool = False) -> None:
        s = deployment.settings
        self.deployment = deployment
        self.settings = s
        self.dry_run = dry_run
        self.store = open_store(s.store.url, deployment.base_dir)
        self.events = Events()
        self.metrics = Metrics()
        self.stopped = asyncio.Event()
        self.intake: asyncio.Queue[InboxEntry] = asyncio.Queue()
        self.tasks: list[asyncio.Task[Any]] = []
        self.retractions: set[asyncio.Task[None]] = set()
        self.channels: dict[str, Channel] = {}  # adapters, made at start (they need a loop)
        self.dispatcher = Dispatcher(
            self.store,
            self.events,
            self.metrics,
            self.channels,
            dict(deployment.channels),
            s.delivery,
            owner=s.mqtt.client_id,
            dry_run=dry_run,
        )
        self.desk = ConfirmDesk(
            s,
            deployment.playbooks,
            self.store,
            self.events,
            self.notify_officer,
            self.dispatcher.release,
        )
        self.retractor = Retractor(deployment, self.store, self.events, self.dispatcher)
        self.receiver = Receiver(
            deployment,
            self.store,
            self.events,
            self.metrics,
            self.dispatcher,
            self.desk,
            self.retractor,
        )
        self.mqtt = MqttLink(s.mqtt, self.on_mqtt_message, self.on_mqtt_connect)
        self.events.subscribe(MqttPublisher(self.mqtt))
        self.web = WebState(
            receiver=self.receiver,
            store=self.store,
            metrics=self.metrics,
            api_token=s.http.api_token,
            healthy=self.health,
            retractor=self.retractor,
        )
        self.broker: Any = None
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.store_open = False

    # -- start -------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        await self.store.open()
        self.store_open = True
        self.session = aiohttp.ClientSession()
        self.channels.update(
            (cid, make_channel(cid, config, self.session, public_url=s.http.public_url))
            for cid, config in self.deployment.channels.items()
            if config.enabled
        )
        if s.mqtt.url is None:
            self.broker = await start_embedded_broker(s.mqtt.embedded_listen)
        await self.start_http()
        if s.security.trigger_secret is None:
            log.warning("unsigned_triggers_accepted", hint="set security.trigger_secret")
        if self.dry_run:
            log.warning("dry_run", detail="no channel will be contacted")
        # What a crash left behind: acknowledged triggers, then unfinished fan-outs.
        await self.receiver.recover_inbox()
        await self.dispatcher.resume()
        await self.desk.resume()
        self.tasks.append(asyncio.create_task(self.intake_worker(), name="intake"))
        self.mqtt.start()
        log.info(
            "daemon_started",
            http=s.http.listen,
            store=s.store.url.split("://")[0],
            channels=sorted(self.channels),
        )

    async def start_http(self) -> None:
        app = make_app(self.web)
        add_confirm_routes(
            app, ConfirmState(self.desk, self.retractor, self.deployment, self.store)
        )
        cap = self.settings.cap
        add_cap_routes(
            app,
            self.deployment.playbooks,
            self.settings.http.public_url,
            cap.sender or default_sender(self.settings.http.public_url),
            cap.expires_after,
            sender_name=cap.sender_name,
        )
        # No access log: confirm URLs carry a secret token.
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        host, _, port = self.settings.http.listen.rpartition(":")
        await web.TCPSite(self.runner, host, int(port)).start()

    async def health(self) -> dict[str, bool]:
        try:
            store_ok = await self.store.ping()
        except Exception:
            store_ok = False
        return {"mqtt": self.mqtt.connected.is_set(), "store": store_ok}

    # -- intake ------------------------------------------------------------------
    async def on_mqtt_message(self, topic: str, payload: bytes) -> None:
        """Commit the raw message to the inbox; the MQTT link acknowledges after this."""
        kind: Literal["trigger", "retract"] = (
            "retract" if topic == self.mqtt.topics.retract else "trigger"
        )
        entry = InboxEntry.new(kind, "mqtt", payload)
        await self.store.inbox_add(entry)
        self.intake.put_nowait(entry)

    async def intake_worker(self) -> None:
        """One at a time, in arrival order, so an incident's stages keep their order."""
        while True:
            entry = await self.intake.get()
            if entry.kind == "retract":
                # A retraction may wait for requests in flight: it must not hold up triggers.
                task = asyncio.create_task(self.handle(entry), name=f"retract:{entry.id}")
                self.retractions.add(task)
                task.add_done_callback(self.retractions.discard)
                continue
            await self.handle(entry)

    async def handle(self, entry: InboxEntry) -> None:
        try:
            await self.receiver.handle(entry)
        except Exception:
            log.exception("intake_failed", entry_id=entry.id)

    async def notify_officer(self, channel_id: str, message: OutgoingMessage) -> bool:
        """Send a duty officer their link on one internal channel (a few quick tries)."""
        if self.dry_run:
            log.info(
                "officer_notification_skipped",
                channel=channel_id,
                alert_id=message.alert_id,
                reason="dry run",
            )
            return True
        channel = self.channels.get(channel_id)
        if channel is None:
            log.error("officer_channel_missing", channel=channel_id)
            return False
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(3),
                wait=wait_random_exponential(0.2, 2),
                retry=retry_if_exception_type(TransientError),
                reraise=True,
            ):
                with attempt:
                    await channel.send(message)
        except ChannelError as exc:
            log.error(
                "officer_notification_failed",
                channel=channel_id,
                alert_id=message.alert_id,
                error=exc.message,
            )
            return False
        return True

    async def on_mqtt_connect(self) -> None:
        """Republish recent alert state: changes made while disconnected were not published."""
        for alert in await self.store.list_alerts(100):
            await self.events.alert_changed(alert, await self.store.get_deliveries(alert.id))

    # -- stop --------------------------------------------------------------------
    async def stop(self) -> None:
        grace = self.settings.delivery.shutdown_grace.total_seconds()
        log.info("daemon_stopping", grace_seconds=grace)
        self.mqtt.intake_open = False
        self.web.accepting = False
        finished = await self.dispatcher.drain(grace)
        if not finished:
            log.warning("shutdown_with_deliveries_in_flight", detail="resumed at next start")
        await self.desk.close()
        await asyncio.gather(*self.retractions, return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.mqtt.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.session is not None:
            await self.session.close()
        if self.broker is not None:
            await self.broker.shutdown()
        if self.store_open:
            await self.store.close()
        log.info("daemon_stopped")

    def reload_requested(self) -> None:
        """SIGHUP: reloading the playbooks and templates arrives with a later change."""
        log.info("reload_not_implemented", detail="restart the daemon to load changed files")

    async def run(self) -> None:
        """Start, wait for SIGTERM/SIGINT (or `stopped`), stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.stopped.set)

        def on_sighup() -> None:
            log.info("reload_requested")
            self.reload_requested()

        # SIGHUP's default action ends the process; a closed terminal or `kill -HUP` must not.
        with contextlib.suppress(NotImplementedError, AttributeError):
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        try:
            await self.start()
        except BaseException:
            await self.stop()  # release what did start (store thread, ports), then report
            raise
        await self.stopped.wait()
        await self.stop()
