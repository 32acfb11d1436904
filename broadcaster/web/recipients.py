"""`GET /api/alerts/{alert_id}/deliveries/{channel_id}`: one delivery, with each
recipient's outcome and, for SMS and WhatsApp, the receipt the provider sent since
(broadcaster.receipts). Behind the API token like every /api/* route."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broadcaster.models import Delivery
from broadcaster.receipts import RECEIPT_KINDS, counts_as, message_ids, recipient_receipts, tally
from broadcaster.store.base import Store
from broadcaster.web.api import STATE


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def delivery_detail(store: Store, delivery: Delivery) -> dict[str, Any]:
    """The delivery as the alert shows it, and one entry per recipient (per-recipient
    kinds; others have none)."""
    out: dict[str, Any] = {
        "alert_id": delivery.alert_id,
        "channel_id": delivery.channel_id,
        "channel_type": delivery.channel_type,
        **delivery.public(),
        "recipient_list": [],
    }
    data = delivery.receipt.data if delivery.receipt is not None else {}
    # The reports are read once: the counts and each recipient's entry come from them.
    receipts = (
        await recipient_receipts(store, delivery) if delivery.channel_type in RECEIPT_KINDS else {}
    )
    if delivery.channel_type in RECEIPT_KINDS and "recipients" in out:
        out["recipients"]["receipts"] = tally(delivery.channel_type, receipts)
    reached = _strings(data.get("delivered_to"))
    failed = _mapping(data.get("failed"))
    ids = message_ids(delivery.receipt)
    permanent = set(_strings(data.get("permanent")))
    in_flight = set(_strings(data.get("in_flight")))
    listed: list[dict[str, Any]] = []
    for recipient in [*reached, *(r for r in failed if r not in reached)]:
        entry: dict[str, Any] = {
            "recipient": recipient,
            "accepted": recipient in reached,
            "message_id": ids.get(recipient),
            "error": failed.get(recipient),
        }
        if recipient not in reached:
            entry["outcome"] = (
                "refused"
                if recipient in permanent
                else "in_flight"
                if recipient in in_flight
                else "not_yet"
            )
        else:
            entry["outcome"] = "accepted"
        if delivery.channel_type in RECEIPT_KINDS and recipient in reached:
            _, report = receipts.get(recipient, (None, None))
            entry["receipt"] = counts_as(delivery.channel_type, report)
            entry["status"] = report.status if report is not None else None
            entry["status_error"] = report.error if report is not None else None
            entry["status_at"] = report.at.isoformat() if report is not None else None
        listed.append(entry)
    out["recipient_list"] = listed
    return out


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def get_delivery(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    alert_id, channel_id = request.match_info["alert_id"], request.match_info["channel_id"]
    if await store.get_alert(alert_id) is None:
        return _json({"error": "not_found", "detail": f"no alert {alert_id!r}"}, 404)
    delivery = next(
        (d for d in await store.get_deliveries(alert_id) if d.channel_id == channel_id), None
    )
    if delivery is None:
        detail = f"alert {alert_id!r} has no delivery to {channel_id!r}"
        return _json({"error": "not_found", "detail": detail}, 404)
    return _json(await delivery_detail(store, delivery))


def add_recipient_routes(app: web.Application) -> None:
    app.router.add_get("/api/alerts/{alert_id}/deliveries/{channel_id}", get_delivery)
