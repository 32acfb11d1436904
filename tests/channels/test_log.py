"""The log adapter: the message goes to the structured log, nothing leaves the machine."""

from __future__ import annotations

from collections.abc import Callable

from structlog.testing import capture_logs

from broadcaster.channels.base import OutgoingMessage
from broadcaster.channels.log import LogAdapter
from broadcaster.models import Receipt

MakeMessage = Callable[..., OutgoingMessage]


async def test_logs_the_message_and_returns_a_receipt(message: MakeMessage) -> None:
    adapter = LogAdapter("trial_log")

    with capture_logs() as logs:
        receipt = await adapter.send(message())

    assert logs == [
        {
            "event": "channel_log",
            "log_level": "info",
            "channel_id": "trial_log",
            "kind": "alert",
            "alert_id": "FW-DUS-2026-000123",
            "mode": "drill",
            "language": "de",
            "title": "ÜBUNG: Großbrand in Flingern-Nord",
            "text": "ÜBUNG: Großbrand 🔥 Ackerstraße. Fenster und Türen schließen.",
        }
    ]
    assert receipt.remote_id == "log-FW-DUS-2026-000123:hook"
    assert receipt.url is None


async def test_logs_reply_to_and_confirm_url(message: MakeMessage) -> None:
    adapter = LogAdapter("trial_log")
    earlier = Receipt(remote_id="log-FW-1:trial_log")

    with capture_logs() as logs:
        await adapter.send(
            message(kind="confirmation_request", reply_to=earlier, confirm_url="https://c/1")
        )

    assert adapter.can_thread
    assert logs[0]["in_reply_to"] == "log-FW-1:trial_log"
    assert logs[0]["confirm_url"] == "https://c/1"


async def test_logs_a_deletion(message: MakeMessage) -> None:
    adapter = LogAdapter("trial_log")
    receipt = await adapter.send(message())

    with capture_logs() as logs:
        await adapter.delete(receipt)

    assert adapter.can_delete
    assert logs == [
        {
            "event": "channel_log_delete",
            "log_level": "info",
            "channel_id": "trial_log",
            "alert_id": "FW-DUS-2026-000123",
            "remote_id": "log-FW-DUS-2026-000123:hook",
        }
    ]
