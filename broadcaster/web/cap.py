"""GET /cap/feed.atom and GET /cap/{id}.xml (contract section 8, CHANNELS.md section 9).

Public, no token: alert hubs and Google Public Alerts poll these. Both exist only while
the deployment has an enabled public `cap_feed` channel (contract section 5), and serve
only what that channel carried: a message whose delivery to it ended `delivered`. So a
drill is served only when the channel is `drill: send` (to a `dry_run` one it ends
`dry_run`), and an alert of a playbook that does not post to the channel never is. A
retracted alert that had been carried stays reachable at its URL (its delivery is then
`retracted`, after being delivered), and its Cancel message is at
/cap/{id}:retraction.xml; everything else is 404.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import timedelta

from aiohttp import web

from broadcaster.cap import (
    ATOM_MIME,
    CANCEL_SUFFIX,
    CAP_MIME,
    atom_feed,
    cap_alert_xml,
    cap_messages,
    earlier_messages,
    expires_at,
)
from broadcaster.channels.settings import ChannelConfig
from broadcaster.models import Alert, Delivery, utcnow
from broadcaster.playbooks import Playbook
from broadcaster.store.base import Store
from broadcaster.web.api import STATE

# The feed scans this many of the newest alerts: an alert is active for `expires_after`
# (hours), so the active ones and whatever supersedes them are always among them.
FEED_SCAN_LIMIT = 500


def add_cap_routes(
    app: web.Application,
    playbooks: Mapping[str, Playbook],
    public_url: str,
    sender: str,
    expires_after: timedelta,
    *,
    channels: Mapping[str, ChannelConfig],
    sender_name: str | None = None,
) -> None:
    """Serve CAP from `app[STATE].store`; `sender` e.g. `broadcaster.cap.default_sender`.

    `channels`: the deployment's channels, read at each request (its cap_feed ones decide).
    """
    public_url = public_url.rstrip("/")

    async def feed(request: web.Request) -> web.Response:
        feed_channels = cap_feed_channels(channels)
        if not feed_channels:
            return _no_feed()
        store = request.app[STATE].store
        now = utcnow()
        scanned = cap_messages(await store.list_alerts(FEED_SCAN_LIMIT))
        # Only incidents with an unexpired message can have an entry (whose msgType
        # depends on its incident's earlier messages): only their deliveries are read.
        current = {m.incident for m in scanned if expires_at(m, expires_after) > now}
        messages = await _carried(
            store, [m for m in scanned if m.incident in current], feed_channels
        )
        entries = [(m, playbooks[m.scenario]) for m in messages if m.scenario in playbooks]
        body = atom_feed(
            entries,
            public_url=public_url,
            sender=sender,
            now=now,
            expires_after=expires_after,
            sender_name=sender_name,
        )
        return web.Response(body=body, content_type=ATOM_MIME, charset="utf-8")

    async def document(request: web.Request) -> web.Response:
        feed_channels = cap_feed_channels(channels)
        if not feed_channels:
            return _no_feed()
        store = request.app[STATE].store
        message_id = request.match_info["alert_id"]
        alert = await store.get_alert(message_id)
        if alert is None and message_id.endswith(CANCEL_SUFFIX):
            # A built Cancel message has no alert of its own: find the retracted one.
            alert = await store.get_alert(message_id.removesuffix(CANCEL_SUFFIX))
        if alert is None:
            return _not_found()
        # References name only messages the feed carried too.
        messages = await _carried(
            store, cap_messages(await store.incident_alerts(alert.incident)), feed_channels
        )
        message = _find(messages, message_id)
        playbook = playbooks.get(message.scenario) if message else None
        if message is None or playbook is None:
            return _not_found()
        body = cap_alert_xml(
            message,
            playbook,
            earlier_messages(message, messages),
            sender=sender,
            public_url=public_url,
            expires_after=expires_after,
            sender_name=sender_name,
        )
        return web.Response(body=body, content_type=CAP_MIME, charset="utf-8")

    app.router.add_get("/cap/feed.atom", feed)
    app.router.add_get("/cap/{alert_id}.xml", document)


def cap_feed_channels(channels: Mapping[str, ChannelConfig]) -> frozenset[str]:
    """The ids of the enabled public cap_feed channels: without one there is no CAP feed."""
    return frozenset(
        cid
        for cid, config in channels.items()
        if config.channel_type == "cap_feed" and config.enabled and config.audience == "public"
    )


def reached_feed(deliveries: Iterable[Delivery], feed_channels: Collection[str]) -> bool:
    """The alert went out on a cap_feed channel: delivered there, or delivered and since
    withdrawn by its correction (`retracted` then, but `delivered_at` stays)."""
    return any(
        d.channel_id in feed_channels
        and (d.state == "delivered" or (d.state == "retracted" and d.delivered_at is not None))
        for d in deliveries
    )


def carried_messages(
    messages: Iterable[Alert],
    deliveries: Mapping[str, list[Delivery]],
    feed_channels: Collection[str],
) -> list[Alert]:
    """The CAP messages the feed carried, in the given order.

    `deliveries` by alert id. A Cancel (the stored correction, or one built for a
    retracted alert) follows the alert it retracts: whoever saw the alert learns of the
    retraction, and a drill never reached is never cancelled in public either.
    """
    return [m for m in messages if reached_feed(deliveries.get(_carrier(m), []), feed_channels)]


async def _carried(
    store: Store, messages: list[Alert], feed_channels: Collection[str]
) -> list[Alert]:
    deliveries = {key: await store.get_deliveries(key) for key in {_carrier(m) for m in messages}}
    return carried_messages(messages, deliveries, feed_channels)


def _carrier(message: Alert) -> str:
    """The alert whose delivery decides whether `message` is served."""
    return message.retracts if message.retracts is not None else message.id


def _find(messages: list[Alert], message_id: str) -> Alert | None:
    return next((m for m in messages if m.id == message_id), None)


def _not_found() -> web.Response:
    return web.Response(status=404, text="no such CAP message\n", content_type="text/plain")


def _no_feed() -> web.Response:
    return web.Response(
        status=404,
        text="no CAP feed: this deployment has no enabled public cap_feed channel\n",
        content_type="text/plain",
    )
