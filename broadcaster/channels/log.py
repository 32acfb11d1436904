"""Log: writes each message to the structured log instead of posting it (for trials).

Every message is one `channel_log` event with the channel id, kind, alert id, mode,
language, title and text (and `in_reply_to` when threaded); a deletion is one
`channel_log_delete` event. The receipt's remote id is `log-<idempotency key>`.
"""

from __future__ import annotations

import structlog

from broadcaster.channels.base import OutgoingMessage
from broadcaster.models import Receipt

logger = structlog.get_logger("broadcaster.channels.log")


class LogAdapter:
    """A channel with `type: log`."""

    can_thread: bool = True  # logs the earlier post's remote id
    can_delete: bool = True  # logs the deletion

    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id

    async def send(self, message: OutgoingMessage) -> Receipt:
        extra: dict[str, str] = {}
        if message.reply_to is not None and message.reply_to.remote_id is not None:
            extra["in_reply_to"] = message.reply_to.remote_id
        if message.confirm_url is not None:
            extra["confirm_url"] = message.confirm_url
        logger.info(
            "channel_log",
            channel_id=self.channel_id,
            kind=message.kind,
            alert_id=message.alert_id,
            mode=message.mode,
            language=message.language,
            title=message.title,
            text=message.text,
            **extra,
        )
        return Receipt(
            remote_id=f"log-{message.idempotency_key}", data={"alert_id": message.alert_id}
        )

    async def delete(self, receipt: Receipt) -> None:
        logger.info(
            "channel_log_delete",
            channel_id=self.channel_id,
            alert_id=receipt.data.get("alert_id"),
            remote_id=receipt.remote_id,
        )
