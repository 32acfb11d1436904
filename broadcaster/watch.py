"""`broadcaster status --watch`: a live terminal view of the open alerts and each channel's
health, redrawn as the daemons' state messages arrive on MQTT (and every few seconds,
so timers and the last hour's failures stay current; with no broker, only then)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import aiomqtt
import structlog
from rich.console import Group
from rich.table import Table
from rich.text import Text

from broadcaster.deployment import Deployment
from broadcaster.health import Health, read_health
from broadcaster.models import FINAL_ALERT_STATES, utcnow
from broadcaster.mqtt import Topics, make_client
from broadcaster.status import RECENT, STATE_STYLE, alerts_list, local_time
from broadcaster.store.base import Store

log = structlog.get_logger(__name__)

EVERY = 5.0  # seconds between redraws without a state message
SETTLE = 0.2  # a burst of state messages (the retained ones at start) is one redraw


async def frame(store: Store, deployment: Deployment, limit: int, note: str = "") -> Group:
    now = utcnow()
    alerts = [
        a
        for a in await store.list_alerts(limit)
        if a.state not in FINAL_ALERT_STATES or now - a.updated_at < RECENT
    ]
    shown = [(a, await store.get_deliveries(a.id)) for a in alerts]
    healths, _ = await read_health(store, deployment.channels, deployment.aside("channel"), now)
    heading = Text(f"As of {local_time(now)}", style="bold")
    if note:
        heading.append(f"  {note}", style="yellow")
    return Group(heading, alerts_list(shown), channels_table(healths))


def channels_table(healths: list[Health]) -> Table:
    table = Table(title="Channels")
    for column in ("channel", "circuit", "last success", "failures (1 h)", "last error"):
        table.add_column(column, overflow="fold")
    for h in healths:
        if h.config is None:
            table.add_row(h.channel_id, "[red]set aside[/]", "", "", h.set_aside or "")
            continue
        circuit = h.circuit.circuit if h.circuit else "closed"
        last = h.last_failure
        table.add_row(
            h.channel_id,
            f"[{STATE_STYLE.get(circuit, 'green')}]{circuit}[/]",
            local_time(h.last_success, with_date=False) if h.last_success else "none yet",
            f"[red]{len(h.failures)}[/]" if h.failures else "0",
            str(last.detail.get("error", "")) if last else "",
        )
    return table


async def changes(client: aiomqtt.Client, topics: Topics, every: float) -> AsyncIterator[None]:
    """Once per burst of state messages, and every `every` seconds without one."""
    await client.subscribe(f"{topics.prefix}/alerts/#")
    await client.subscribe(topics.daemon)
    messages = client.messages  # each wait for the next one may be cancelled safely
    while True:
        try:
            async with asyncio.timeout(every):
                await anext(messages)
            while True:  # the rest of the burst
                async with asyncio.timeout(SETTLE):
                    await anext(messages)
        except TimeoutError:
            pass
        yield


async def frames(
    store: Store, deployment: Deployment, limit: int, every: float = EVERY
) -> AsyncGenerator[Group]:
    """The view now, then again after each change; the store is the caller's."""
    settings = deployment.settings
    topics = Topics(settings.mqtt.topic_prefix)
    yield await frame(store, deployment, limit)
    while True:
        try:
            async with make_client(settings.mqtt) as client:
                async for _ in changes(client, topics, every):
                    yield await frame(store, deployment, limit)
        except aiomqtt.MqttError as exc:
            log.warning("watch_without_broker", error=str(exc))
        await asyncio.sleep(every)  # the broker is away: try again; the store meanwhile
        yield await frame(store, deployment, limit, f"no broker: redrawn every {every:g} s")
