"""The `cap_feed` channel: the daemon itself serves the alert as CAP 1.2 at
/cap/{id}.xml and lists it in /cap/feed.atom (broadcaster/web/cap.py), so "sending"
only records where the document is; the routes serve an alert only once this delivery is
`delivered` (a drill to a `drill: dry_run` feed never is). Nothing leaves the daemon, so
nothing can fail."""

from __future__ import annotations

from broadcaster.channels.base import OutgoingMessage
from broadcaster.models import Receipt


class CapFeedAdapter:
    can_thread = False  # CAP threads by <references>, which the document carries itself
    can_delete = True  # a retracted alert leaves the feed; its Cancel message is served

    def __init__(self, channel_id: str, public_url: str) -> None:
        self.channel_id = channel_id
        self.public_url = public_url.rstrip("/")

    async def send(self, message: OutgoingMessage) -> Receipt:
        return Receipt(
            remote_id=message.alert_id, url=f"{self.public_url}/cap/{message.alert_id}.xml"
        )

    async def delete(self, receipt: Receipt) -> None:
        return None  # the feed lists only active alerts; the Cancel message says why
