"""Delivery receipts: what the provider reports about each recipient's message after it
accepted it (SMS: Twilio status callbacks; WhatsApp: the status webhook).

The delivery's own state stays as the contract has it: `delivered` means every recipient's
message was accepted by the provider. Receipts say what happened next. They are kept as
they arrive (`Store.add_status_report`; repeats are dropped there) and ranked when read:
reports come more than once and out of order, and the furthest state wins.

- WhatsApp: sent < delivered < read; failed is final. A message read as it arrives
  may skip `delivered`.
- Twilio: queued (accepted, scheduled) < sending < sent < delivered < read (WhatsApp
  over Twilio only); undelivered, failed and canceled are final.

Each provider word counts as one of RECEIPT_STATES, for the counts in
`GET /api/alerts/{id}`: pending (no report yet, or still queued at Twilio), sent (handed
to the carrier or to WhatsApp), delivered (on the phone), read (opened, WhatsApp only),
undelivered (the carrier could not deliver it, SMS), failed (refused after acceptance).

The hooks (`broadcaster.web.hooks`) check each provider's signature with the functions
here; the SMS adapter asks Twilio for callbacks with `sms_status_callback`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from broadcaster.models import Delivery, Receipt, StatusReport
from broadcaster.store.base import Store

RECEIPT_STATES = ("pending", "sent", "delivered", "read", "undelivered", "failed")
# Channel types whose provider sends receipts; the type is also the hook's path segment
# (hook_url: /hooks/<type>/<channel id>).
RECEIPT_KINDS = frozenset({"sms", "whatsapp"})

# The provider's word -> (rank: the furthest wins, what it counts as).
_WHATSAPP: dict[str, tuple[int, str]] = {
    "sent": (1, "sent"),
    "delivered": (2, "delivered"),
    "read": (3, "read"),
    "failed": (9, "failed"),
}
_TWILIO: dict[str, tuple[int, str]] = {
    "accepted": (0, "pending"),
    "scheduled": (0, "pending"),
    "queued": (0, "pending"),
    "sending": (1, "sent"),
    "sent": (2, "sent"),
    "delivered": (3, "delivered"),
    "partially_delivered": (3, "delivered"),
    "read": (4, "read"),
    "undelivered": (9, "undelivered"),
    "failed": (9, "failed"),
    "canceled": (9, "failed"),
}
_WORDS: dict[str, dict[str, tuple[int, str]]] = {"whatsapp": _WHATSAPP, "sms": _TWILIO}


def furthest(channel_type: str, reports: Iterable[StatusReport]) -> StatusReport | None:
    """The report that says how far the message got: the highest rank; of equals, the
    first kept. Words the provider may add later (unknown here) never win."""
    words = _WORDS.get(channel_type, {})
    best: StatusReport | None = None
    best_rank = -1
    for report in reports:
        rank = words.get(report.status, (-1, ""))[0]
        if rank > best_rank:
            best, best_rank = report, rank
    return best


def counts_as(channel_type: str, report: StatusReport | None) -> str:
    """Which of RECEIPT_STATES a message stands at, by its furthest report."""
    if report is None:
        return "pending"
    return _WORDS.get(channel_type, {}).get(report.status, (-1, "pending"))[1]


def message_ids(receipt: Receipt | None) -> dict[str, str]:
    """Each accepted recipient's message id (SMS sid, wamid) in a delivery's receipt."""
    ids = receipt.data.get("ids") if receipt is not None else None
    if not isinstance(ids, Mapping):
        return {}
    return {k: v for k, v in ids.items() if isinstance(k, str) and isinstance(v, str)}


async def recipient_receipts(
    store: Store, delivery: Delivery
) -> dict[str, tuple[str, StatusReport | None]]:
    """Each accepted recipient's (message id, furthest report or None)."""
    ids = message_ids(delivery.receipt)
    if not ids:
        return {}
    kept = await store.status_reports(delivery.channel_id, set(ids.values()))
    return {
        recipient: (mid, furthest(delivery.channel_type, kept.get(mid, [])))
        for recipient, mid in ids.items()
    }


def tally(
    channel_type: str, receipts: Mapping[str, tuple[str, StatusReport | None]]
) -> dict[str, int]:
    """How many of these recipients (recipient_receipts) stand at each of RECEIPT_STATES."""
    counts = dict.fromkeys(RECEIPT_STATES, 0)
    for _, report in receipts.values():
        counts[counts_as(channel_type, report)] += 1
    return counts


async def receipt_counts(store: Store, delivery: Delivery) -> dict[str, int]:
    """How many accepted recipients stand at each of RECEIPT_STATES."""
    return tally(delivery.channel_type, await recipient_receipts(store, delivery))


async def add_receipt_counts(
    store: Store, deliveries: Iterable[Delivery], alert_json: dict[str, Any]
) -> None:
    """`recipients.receipts` in an alert's JSON, for each delivery of a kind with receipts
    (read now: the hooks never rewrite a delivery, the dispatcher owns it)."""
    shown = alert_json.get("deliveries", {})
    for delivery in deliveries:
        entry = shown.get(delivery.channel_id)
        if delivery.channel_type not in RECEIPT_KINDS or not isinstance(entry, dict):
            continue
        recipients = entry.get("recipients")
        if isinstance(recipients, dict):
            recipients["receipts"] = await receipt_counts(store, delivery)


# -- hooks: where providers send them, and how they sign ---------------------------------


def hook_url(public_url: str, channel_type: str, channel_id: str) -> str:
    """The address a provider is given for a channel's receipts."""
    return f"{public_url.rstrip('/')}/hooks/{channel_type}/{channel_id}"


def is_loopback(public_url: str) -> bool:
    """Whether http.public_url names this machine only (no provider can reach it)."""
    host = (urlsplit(public_url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # ::ffff:127.0.0.1 is 127.0.0.1 too (Python 3.11 does not say so by itself).
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def sms_status_callback(channel_id: str, wanted: bool | None, public_url: str | None) -> str | None:
    """The StatusCallback an SMS channel sends with each message, or None: `wanted`
    True or False as the channel file says; None (unset) on unless the public URL is a
    loopback address."""
    if public_url is None or wanted is False:
        return None
    if wanted is None and is_loopback(public_url):
        return None
    return hook_url(public_url, "sms", channel_id)


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature: Base64(HMAC-SHA1(auth token, the URL Twilio was given, then
    every POST parameter sorted by name, name and value run together))
    (twilio.com/docs/usage/security#validating-requests)."""
    signed = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), signed.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def meta_signature(app_secret: str, body: bytes) -> str:
    """X-Hub-Signature-256: `sha256=` and the hex HMAC-SHA256 of the raw body, keyed with
    the app secret (developers.facebook.com/docs/graph-api/webhooks/getting-started)."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_matches(given: str, expected: str) -> bool:
    """Constant-time; a header with bytes that are not UTF-8 is simply wrong."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
