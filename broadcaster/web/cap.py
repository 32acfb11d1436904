"""GET /cap/feed.atom and GET /cap/{id}.xml (contract section 8, CHANNELS.md section 9).

Public, no token: alert hubs and Google Public Alerts poll these. Only released alerts
are served; one awaiting confirmation, rejected or never sent is 404. A retracted alert
stays reachable at its URL, and its Cancel message is at /cap/{id}:retraction.xml.
"""

from __future__ import annotations

from collections.abc import Mapping
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
)
from broadcaster.models import Alert, utcnow
from broadcaster.playbooks import Playbook
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
    sender_name: str | None = None,
) -> None:
    """Serve CAP from `app[STATE].store`; `sender` e.g. `broadcaster.cap.default_sender`."""
    public_url = public_url.rstrip("/")

    async def feed(request: web.Request) -> web.Response:
        store = request.app[STATE].store
        messages = cap_messages(await store.list_alerts(FEED_SCAN_LIMIT))
        entries = [(m, playbooks[m.scenario]) for m in messages if m.scenario in playbooks]
        body = atom_feed(
            entries,
            public_url=public_url,
            sender=sender,
            now=utcnow(),
            expires_after=expires_after,
            sender_name=sender_name,
        )
        return web.Response(body=body, content_type=ATOM_MIME, charset="utf-8")

    async def document(request: web.Request) -> web.Response:
        store = request.app[STATE].store
        message_id = request.match_info["alert_id"]
        alert = await store.get_alert(message_id)
        if alert is None and message_id.endswith(CANCEL_SUFFIX):
            # A built Cancel message has no alert of its own: find the retracted one.
            alert = await store.get_alert(message_id.removesuffix(CANCEL_SUFFIX))
        if alert is None:
            return _not_found()
        messages = cap_messages(await store.incident_alerts(alert.incident))
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


def _find(messages: list[Alert], message_id: str) -> Alert | None:
    return next((m for m in messages if m.id == message_id), None)


def _not_found() -> web.Response:
    return web.Response(status=404, text="no such CAP message\n", content_type="text/plain")
