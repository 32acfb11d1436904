"""`broadcaster run`: the store, the channels, MQTT and HTTP around one pipeline, in one
asyncio process; taken down gracefully on SIGTERM/SIGINT.

Every long-running part runs under the supervisor (supervision.py): none dies silently.
The store rides out short outages; when it stays away past `store.outage_limit`, the
daemon stops and exits with EXIT_STORE_GONE so that systemd or the container runtime
starts it afresh. `/healthz` reports each part truthfully.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from datetime import timedelta
from typing import Any, Literal

import structlog
from aiohttp import web

from broadcaster.cap import default_sender
from broadcaster.channel_test import ChannelTest
from broadcaster.channels.registry import ChannelPool
from broadcaster.deployment import Deployment
from broadcaster.inbox import Inbox
from broadcaster.models import utcnow
from broadcaster.mqtt import MqttLink, MqttPublisher, start_embedded_broker
from broadcaster.pipeline import build_pipeline
from broadcaster.reload import Reloader
from broadcaster.selftest import Selftest
from broadcaster.store import open_store
from broadcaster.store.outage import StoreUnavailable
from broadcaster.supervision import Supervisor, process_id, same_host_and_dead
from broadcaster.takeover import Takeover
from broadcaster.web.api import STATE, WebState, make_app
from broadcaster.web.cap import add_cap_routes
from broadcaster.web.confirm import ConfirmState, add_confirm_routes
from broadcaster.web.console.adhoc_form import add_adhoc_routes
from broadcaster.web.console.approvals import add_template_routes
from broadcaster.web.console.auth import add_console_auth
from broadcaster.web.console.board_routes import add_board_routes
from broadcaster.web.console.channels import add_channel_routes
from broadcaster.web.console.drills import add_drill_routes
from broadcaster.web.console.incident import add_incident_routes
from broadcaster.web.console.new_alert import add_new_alert_routes
from broadcaster.web.hooks import HookState, add_hook_routes
from broadcaster.web.media import add_media_routes
from broadcaster.web.push import add_push_routes
from broadcaster.web.recipients import add_recipient_routes
from broadcaster.web.selftest import add_selftest_route
from broadcaster.web.warnings import add_warning_routes

log = structlog.get_logger(__name__)

EXIT_STORE_GONE = 75  # EX_TEMPFAIL: the store stayed unreachable; a restart may help
EXIT_CLIENT_ID_IN_USE = 78  # EX_CONFIG: another running daemon has our mqtt.client_id
# The store's lease on our MQTT client id: renewed every third of it, so a second process
# with the same id is noticed (and refused) within this time.
CLIENT_ID_LEASE = timedelta(seconds=15)
CLIENT_ID_LEASE_PREFIX = "mqtt-client:"  # + mqtt.client_id: the lease a running daemon holds
PRUNE_EVERY = 3600.0  # seconds between prunings of refused input past audit.retention
FIRST_SCAN_WAIT = 10.0  # seconds the first takeover scan waits for MQTT (to publish)


class StartupRefused(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Daemon:
    def __init__(self, deployment: Deployment, *, dry_run: bool = False) -> None:
        s = deployment.settings
        self.deployment = deployment
        self.settings = s
        self.dry_run = dry_run
        self.owner = process_id()
        self.exit_code = 0
        self.stopped = asyncio.Event()
        self.store = open_store(
            s.store.url,
            deployment.base_dir,
            outage_limit=s.store.outage_limit,
            replica_wait=s.store.replica_wait,
        )
        self.store.outage.on_give_up.append(lambda reason: self.fatal(reason, EXIT_STORE_GONE))
        self.supervisor = Supervisor(lambda reason: self.fatal(reason, EXIT_STORE_GONE))
        self.pool = ChannelPool(deployment.channels, public_url=s.http.public_url, store=self.store)
        self.pipeline = build_pipeline(
            deployment, self.store, self.pool.adapters, owner=self.owner, dry_run=dry_run
        )
        p = self.pipeline
        self.events, self.metrics = p.events, p.metrics
        self.dispatcher, self.desk, self.receiver, self.retractor = (
            p.dispatcher,
            p.desk,
            p.receiver,
            p.retractor,
        )
        self.inbox = Inbox(
            p.receiver,
            self.store,
            self.supervisor,
            owner=self.owner,
            broker_session=s.mqtt.client_id,
        )
        self.takeover = Takeover(
            self.store, self.inbox, p.receiver, p.dispatcher, p.desk, p.retractor, p.metrics
        )
        self.reloader = Reloader(deployment, self.pool, p.officers, self.store)
        self.selftest = Selftest(
            deployment,
            p.receiver,
            p.dispatcher,
            self.store,
            p.metrics,
            p.officers,
            owner=self.owner,
        )
        self.mqtt = MqttLink(s.mqtt, self.on_mqtt_message, self.on_mqtt_connect)
        self.events.subscribe(MqttPublisher(self.mqtt, self.store))
        self.web = WebState(
            receiver=p.receiver,
            store=self.store,
            metrics=p.metrics,
            api_token=s.http.api_token,
            healthy=self.health,
            retractor=p.retractor,
            owner=self.owner,
            reload=lambda: self.reloader.reload("http"),
        )
        self.broker: Any = None
        self.runner: web.AppRunner | None = None
        self.store_open = False
        self.client_id_lease = CLIENT_ID_LEASE_PREFIX + s.mqtt.client_id

    @property
    def channels(self) -> dict[str, Any]:
        return self.pool.adapters

    # -- start -------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        await self.store.open()
        self.store_open = True
        await self.claim_client_id()
        await self.pool.open()
        if s.mqtt.url is None:
            self.broker = await start_embedded_broker(s.mqtt.embedded_listen)
        await self.start_http()
        if s.security.trigger_secret is None:
            log.warning("unsigned_triggers_accepted", hint="set security.trigger_secret")
        if self.dry_run:
            log.warning("dry_run", detail="no channel will be contacted")
        self.supervisor.loop("intake", self.inbox.run)
        self.supervisor.loop("takeover", self.scan_for_work)
        self.supervisor.loop("heartbeat", self.heartbeat)
        self.supervisor.loop("prune", self.prune)
        self.supervisor.loop("watch", self.reloader.watch)
        self.supervisor.loop("mqtt", self.mqtt.run)
        self.supervisor.loop("selftest", self.selftest.schedule)
        for item in self.reloader.set_aside():
            log.error("set_aside", **item)
        self.supervisor.spawn("tell_set_aside", self.reloader.tell_set_aside())
        log.info(
            "daemon_started",
            owner=self.owner,
            http=s.http.listen,
            store=s.store.url.split("://")[0],
            channels=sorted(self.channels),
        )

    async def start_http(self) -> None:
        app = make_app(self.web, self.settings.http.trusted_proxies)
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
            channels=self.deployment.channels,
            sender_name=cap.sender_name,
        )
        add_warning_routes(app, self.deployment, self.events, dry_run=self.dry_run)
        add_push_routes(app, self.deployment.channels, self.settings.http.public_url)
        add_hook_routes(
            app, HookState(self.store, self.deployment.channels, self.settings.http.public_url)
        )
        add_recipient_routes(app)
        add_media_routes(app, self.deployment)  # share-pic cards for Meta to fetch
        add_console_auth(app, self.deployment, lambda app: app[STATE].store)
        add_board_routes(app, self.store, self.events, self.desk.expires_at, self.deployment)
        add_template_routes(app, self.deployment, self.reloader.reload)
        add_incident_routes(app, self.deployment, self.desk)
        add_new_alert_routes(app, self.deployment)
        add_drill_routes(app, self.deployment)
        add_adhoc_routes(app, self.deployment)
        add_selftest_route(app, self.selftest)
        tester = ChannelTest(self.deployment, self.dispatcher, self.store, dry_run=self.dry_run)
        add_channel_routes(app, self.deployment, tester)
        # No access log: confirm URLs carry a secret token.
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        host, _, port = self.settings.http.listen.rpartition(":")
        await web.TCPSite(self.runner, host, int(port)).start()

    async def claim_client_id(self) -> None:
        """Hold our MQTT client id in the store: two processes with one id would throw
        each other off the broker all day. A predecessor that died on this host gives it
        up at once; any other holder has a lease to lose, then we refuse to start."""
        give_up = time.monotonic() + CLIENT_ID_LEASE.total_seconds() + 2
        while True:
            now = utcnow()
            holder = await self.store.lease_holder(self.client_id_lease, now)
            dead = {holder} if holder is not None and same_host_and_dead(holder) else set()
            got = await self.store.take_lease(
                self.client_id_lease, self.owner, now + CLIENT_ID_LEASE, now, dead
            )
            if got == self.owner:
                return
            if time.monotonic() > give_up:
                raise StartupRefused(
                    f"mqtt.client_id {self.settings.mqtt.client_id!r} is in use by another "
                    f"running daemon ({got}); give each daemon its own mqtt.client_id",
                    EXIT_CLIENT_ID_IN_USE,
                )
            log.warning("mqtt_client_id_held", client_id=self.settings.mqtt.client_id, by=got)
            await asyncio.sleep(1)  # until the holder's lease runs out, or it proves alive

    async def heartbeat(self) -> None:
        every = CLIENT_ID_LEASE.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            now = utcnow()
            got = await self.store.take_lease(
                self.client_id_lease, self.owner, now + CLIENT_ID_LEASE, now
            )
            if got != self.owner:
                self.fatal(
                    f"another daemon ({got}) took over mqtt.client_id "
                    f"{self.settings.mqtt.client_id!r}",
                    EXIT_CLIENT_ID_IN_USE,
                )
                return

    async def scan_for_work(self) -> None:
        """The takeover scan; the first one waits briefly for MQTT, so that what a crash
        left behind (refusals included) is also published."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.mqtt.connected.wait(), FIRST_SCAN_WAIT)
        await self.takeover.run()

    async def prune(self) -> None:
        """Refused input older than audit.retention goes; one daemon at a time does it."""
        while True:
            now = utcnow()
            lease = timedelta(seconds=PRUNE_EVERY)
            if await self.store.take_lease("prune", self.owner, now + lease, now) == self.owner:
                pruned = await self.store.prune(now - self.settings.audit.retention)
                if pruned:
                    log.info("audit_pruned", entries=pruned)
            await asyncio.sleep(PRUNE_EVERY)

    async def health(self) -> dict[str, bool]:
        store_ok = self.store.outage.available and await self.store.ping()
        mqtt_ok = self.mqtt.connected.is_set()
        self.metrics.store_up.set(int(store_ok))
        self.metrics.mqtt_up.set(int(mqtt_ok))
        return {
            "mqtt": mqtt_ok,
            "store": store_ok,
            "intake": self.web.accepting
            and self.supervisor.healthy("intake")
            and self.supervisor.healthy("mqtt"),
            "dispatcher": self.supervisor.healthy("takeover") and self.takeover.healthy(),
        }

    # -- intake ------------------------------------------------------------------
    async def on_mqtt_message(self, topic: str, payload: bytes) -> None:
        """Commit the raw message to the inbox; the MQTT link acknowledges after this."""
        kind: Literal["trigger", "retract"] = (
            "retract" if topic == self.mqtt.topics.retract else "trigger"
        )
        await self.inbox.from_mqtt(kind, payload)

    async def on_mqtt_connect(self) -> None:
        """What waits in the inbox goes first (it arrived before anything the broker now
        delivers), then recent alert state is republished: changes made while
        disconnected were not."""
        await self.inbox.adopt(utcnow())
        for alert in await self.store.list_alerts(100):
            self.events.changed(alert.id, self.store)

    def fatal(self, reason: str, code: int) -> None:
        if self.exit_code == 0:
            self.exit_code = code
            log.error("daemon_exiting", reason=reason, exit_code=code)
        self.stopped.set()

    # -- stop --------------------------------------------------------------------
    async def stop(self) -> None:
        grace = self.settings.delivery.shutdown_grace.total_seconds()
        log.info("daemon_stopping", grace_seconds=grace)
        self.mqtt.intake_open = False
        self.web.accepting = False
        if not await self.dispatcher.drain(grace):
            log.warning("shutdown_with_deliveries_in_flight", detail="resumed at next start")
        await self.desk.close()
        await self.pipeline.officers.close()
        await self.events.flush(grace)  # the last state changes reach MQTT before it closes
        await self.mqtt.stop()
        await self.supervisor.close()
        if self.store_open and self.store.outage.available:
            with contextlib.suppress(StoreUnavailable):
                await self.store.drop_lease(self.client_id_lease, self.owner)
        if self.runner is not None:
            await self.runner.cleanup()
        await self.pool.close()
        if self.broker is not None:
            await self.broker.shutdown()
        if self.store_open:
            await self.store.close()
        log.info("daemon_stopped", exit_code=self.exit_code)

    def reload_requested(self) -> None:
        """SIGHUP: load playbooks, templates, approvals and channels again."""
        self.supervisor.spawn("reload", self.reloader.reload("SIGHUP"))

    async def run(self) -> int:
        """Start, wait for SIGTERM/SIGINT (or a fatal error), stop; the exit code."""
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
        return self.exit_code
