"""Webhook: one JSON POST per message, signed when a secret is set (contract section 5).

A message is posted to the configured URL as

    {"kind": "alert" | "confirmation_request" | "retraction", "alert_id", "incident",
     "scenario", "stage", "mode", "title", "text", "language",
     "confirm_url" (confirmation_request only), "expires_at" (ISO 8601 or null),
     "in_reply_to" (only when threaded: the remote id of the earlier post)}

and a deletion (the original post of a retracted alert, after the correction) as

    {"kind": "deletion", "alert_id", "remote_id"}

The body is compact UTF-8 JSON with non-ASCII characters kept as they are. Headers:
`Content-Type: application/json`, `Idempotency-Key` (the message's key; for a deletion
`deletion:<remote_id>`), `X-Broadcaster-Signature: sha256=<hex HMAC-SHA256 of the exact
body bytes, key: the channel's secret>` when a secret is set, and the channel's own
`headers` (which cannot replace those three).

The receipt's remote id is the answer's JSON `id` when there is one, else the idempotency
key; its url is the answer's JSON `url` when there is one. Redirects are not followed.
Answers are classified by `broadcaster.channels.http`, with 409 also transient: a
receiver that honours Idempotency-Key answers 409 while it is still processing an
earlier request with the same key (draft-ietf-httpapi-idempotency-key-header), and the
retry then gets the original answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from broadcaster.channels.base import OutgoingMessage, PermanentError
from broadcaster.channels.http import BUSY_STATUSES, TRANSIENT_STATUSES, Answer, HttpAdapter
from broadcaster.channels.settings import WebhookChannel
from broadcaster.models import Receipt

USER_AGENT = "broadcaster-webhook/1"
SIGNATURE_HEADER = "X-Broadcaster-Signature"
_OWN_HEADERS = frozenset({"content-type", "idempotency-key", SIGNATURE_HEADER.lower()})


def message_body(message: OutgoingMessage) -> dict[str, Any]:
    """The JSON object posted for a message, in the contract's field order."""
    body: dict[str, Any] = {
        "kind": message.kind,
        # A receiver keys its banner on alert_id: a retraction names the retracted alert.
        "alert_id": message.retracts if message.retracts is not None else message.alert_id,
        "incident": message.incident,
        "scenario": message.scenario,
        "stage": message.stage,
        "mode": message.mode,
        "title": message.title,
        "text": message.text,
        "language": message.language,
    }
    if message.kind == "confirmation_request":
        body["confirm_url"] = message.confirm_url
    if message.kind == "retraction":
        body["correction_id"] = message.alert_id
    if message.kind == "refusal":
        body["error"], body["detail"] = message.error, message.detail
    body["expires_at"] = message.expires_at.isoformat() if message.expires_at else None
    if message.reply_to is not None and message.reply_to.remote_id is not None:
        body["in_reply_to"] = message.reply_to.remote_id
    return body


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """The X-Broadcaster-Signature value for these exact body bytes."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookAdapter(HttpAdapter[WebhookChannel]):
    """One webhook endpoint (channels/<id>.yaml with `type: webhook`)."""

    service = "webhook"
    transient_statuses = TRANSIENT_STATUSES | {409}  # "still processing this key"
    busy_statuses = BUSY_STATUSES

    can_thread: bool = True  # the earlier post's remote id travels as `in_reply_to`
    can_delete: bool = True  # a `deletion` POST; the receiver removes what it published

    async def send(self, message: OutgoingMessage) -> Receipt:
        answer = await self._post(encode(message_body(message)), message.idempotency_key)
        remote_id, url = _posted(answer)
        return Receipt(
            remote_id=remote_id or message.idempotency_key,
            url=url,
            data={"alert_id": message.alert_id},
        )

    async def delete(self, receipt: Receipt) -> None:
        if not receipt.remote_id:
            raise PermanentError(f"{self._service}: the receipt has no remote id to delete")
        body = {
            "kind": "deletion",
            "alert_id": receipt.data.get("alert_id"),
            "remote_id": receipt.remote_id,
        }
        await self._post(encode(body), f"deletion:{receipt.remote_id}")

    def headers(self, body: bytes, idempotency_key: str) -> dict[str, str]:
        """Every header of one request with this body."""
        headers = {"User-Agent": USER_AGENT}
        headers.update(
            (name, value)
            for name, value in self._config.headers.items()
            if name.lower() not in _OWN_HEADERS
        )
        headers["Content-Type"] = "application/json"
        headers["Idempotency-Key"] = idempotency_key
        if self._config.secret:
            headers[SIGNATURE_HEADER] = signature(self._config.secret, body)
        return headers

    async def _post(self, body: bytes, idempotency_key: str) -> Answer:
        """POST the body; the answer on 2xx, else TransientError/PermanentError."""
        answer = await self.request(
            "POST", self._config.url, data=body, headers=self.headers(body, idempotency_key)
        )
        self.check(answer)
        return answer


def _posted(answer: Answer) -> tuple[str | None, str | None]:
    """`id` and `url` from a JSON answer, where the receiver sent them."""
    data = answer.fields
    found_id, found_url = data.get("id"), data.get("url")
    remote_id = None
    if isinstance(found_id, str | int) and not isinstance(found_id, bool) and str(found_id):
        remote_id = str(found_id)
    url = found_url if isinstance(found_url, str) and found_url else None
    return remote_id, url
