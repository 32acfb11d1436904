"""Providers' delivery receipts (contract section 8), public: the provider's signature is
the check, not the API token.

- `POST /hooks/whatsapp/{channel_id}`: Meta's status webhook, JSON signed with
  `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app_secret)>`; each
  `entry[].changes[].value.statuses[]` is kept as a StatusReport.
- `GET /hooks/whatsapp/{channel_id}`: Meta's verification handshake when the webhook is
  set up: `hub.mode=subscribe` and `hub.verify_token` equal to the channel's
  `verify_token` are answered with `hub.challenge`.
- `POST /hooks/sms/{channel_id}`: a Twilio status callback (form), signed with
  `X-Twilio-Signature` over the URL Twilio was given (built from http.public_url, never
  from the Host header, which a proxy may change) and the sorted parameters.

No signature: 401; a wrong one: 403, logged without any secret, nothing kept. An unknown
channel, or one of another type: 404. A body over HOOK_MAX_BODY (not the API's smaller
limit): 413, nothing kept. A report is kept once (repeats return 200 too, so
the provider stops resending) and answered at once; what it means is worked out when an
alert is read (broadcaster.receipts). Nothing here changes a delivery: the dispatcher owns
it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from broadcaster.channels.settings import ChannelConfig, SmsChannel, WhatsappChannel
from broadcaster.models import StatusReport, utcnow
from broadcaster.receipts import (
    hook_url,
    meta_signature,
    signature_matches,
    twilio_signature,
)
from broadcaster.store.base import Store
from broadcaster.web.guard import read_body

log = structlog.get_logger(__name__)

# Meta batches statuses: during a large fan-out one webhook body can carry thousands, far
# over the API's client_max_size. A refused body is resent and refused again, so its
# receipts would be lost for good; this bound only keeps a caller from filling memory.
HOOK_MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class HookState:
    store: Store
    channels: Mapping[str, ChannelConfig]  # the deployment's own mapping: reloads show
    public_url: str


HOOKS = web.AppKey("hooks", HookState)


def _error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


def _channel(request: web.Request, wanted: type[Any]) -> Any:
    """The channel of the path when it is of the wanted type, else None (a 404)."""
    channel = request.app[HOOKS].channels.get(request.match_info["channel_id"])
    return channel if isinstance(channel, wanted) else None


def _unknown(request: web.Request) -> web.Response:
    cid = request.match_info["channel_id"]
    kind = request.path.split("/")[2]
    return _error(404, "not_found", f"no {kind} channel {cid!r} here")


async def _signed(
    request: web.Request, wanted: type[Any], header: str, expected: Callable[[Any, bytes], str]
) -> tuple[Any, bytes] | web.Response:
    """The channel and raw body of a hook call its provider signed (`header` equal to
    `expected(channel, body)`), else the answer that refuses it: 404, 401, 413 or 403. The
    body is read whole (the signature covers every byte), up to HOOK_MAX_BODY."""
    channel = _channel(request, wanted)
    if channel is None:
        return _unknown(request)
    given = request.headers.get(header)
    if not given:
        return _refused(request, f"no {header}", 401)
    raw = await read_body(request, HOOK_MAX_BODY)
    if raw is None:
        log.warning("hook_body_too_large", path=request.path, remote=request.remote)
        return _error(
            413,
            "too_large",
            f"the body is over {HOOK_MAX_BODY} bytes; nothing was kept: send the statuses "
            "in smaller batches",
        )
    if not signature_matches(given, expected(channel, raw)):
        return _refused(request, f"{header} does not match", 403)
    return channel, raw


def _refused(request: web.Request, reason: str, status: int) -> web.Response:
    log.warning(
        "hook_signature_refused",
        path=request.path,
        reason=reason,
        remote=request.remote,
    )
    return _error(status, "bad_signature", f"{reason}; nothing was kept")


# -- WhatsApp ----------------------------------------------------------------------------


async def whatsapp_handshake(request: web.Request) -> web.Response:
    channel: WhatsappChannel | None = _channel(request, WhatsappChannel)
    if channel is None:
        return _unknown(request)
    query = request.query
    token = query.get("hub.verify_token", "")
    if (
        query.get("hub.mode") != "subscribe"
        or channel.verify_token is None
        or not hmac.compare_digest(
            token.encode("utf-8", "surrogatepass"), channel.verify_token.encode("utf-8")
        )
    ):
        log.warning("hook_handshake_refused", path=request.path)
        return _error(403, "forbidden", "hub.mode must be subscribe and hub.verify_token match")
    return web.Response(text=query.get("hub.challenge", ""), content_type="text/plain")


async def whatsapp_status(request: web.Request) -> web.Response:
    cid = request.match_info["channel_id"]
    signed = await _signed(
        request,
        WhatsappChannel,
        "X-Hub-Signature-256",
        lambda channel, raw: meta_signature(channel.app_secret, raw),
    )
    if isinstance(signed, web.Response):
        return signed
    _, raw = signed
    try:
        data = json.loads(raw)
    except ValueError:
        return _error(400, "invalid_json", "the body is not JSON")
    reports, incoming = whatsapp_reports(cid, data)
    kept = await _keep(request.app[HOOKS].store, reports)
    if incoming:
        # Opt-in and opt-out by message (START / STOP) need subscribers in the store.
        log.info("hook_incoming_messages_ignored", channel=cid, messages=incoming)
    return web.json_response({"kept": kept, "repeated": len(reports) - kept})


def whatsapp_reports(channel_id: str, data: Any) -> tuple[list[StatusReport], int]:
    """The statuses of a webhook body, and how many incoming messages it carried."""
    reports: list[StatusReport] = []
    incoming = 0
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        return reports, incoming
    for entry in _dicts(data.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            incoming += len(_dicts(value.get("messages")))
            for status in _dicts(value.get("statuses")):
                mid, word = status.get("id"), status.get("status")
                if not (isinstance(mid, str) and mid and isinstance(word, str) and word):
                    continue
                reports.append(
                    StatusReport(
                        channel_id=channel_id,
                        message_id=mid,
                        status=word,
                        error=_meta_error(status.get("errors")),
                        at=_epoch(status.get("timestamp")),
                    )
                )
    return reports, incoming


def _meta_error(errors: Any) -> str | None:
    for error in _dicts(errors):
        code, title = error.get("code"), error.get("title") or error.get("message")
        parts = [str(code)] if code is not None else []
        if isinstance(title, str) and title:
            parts.append(title)
        if parts:
            return ": ".join(parts)[:300]
    return None


def _epoch(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return utcnow()


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# -- SMS (Twilio) ------------------------------------------------------------------------


async def sms_status(request: web.Request) -> web.Response:
    cid = request.match_info["channel_id"]
    # The URL Twilio was given (StatusCallback), not what the Host header says.
    url = hook_url(request.app[HOOKS].public_url, "sms", cid)
    # As it was sent (still percent-encoded): Twilio signs the URL it was given, and
    # request.query_string is decoded (`%20` would be a space and never match).
    if query := request.rel_url.raw_query_string:
        url += f"?{query}"
    signed = await _signed(
        request,
        SmsChannel,
        "X-Twilio-Signature",
        lambda channel, raw: twilio_signature(channel.auth_token, url, _form(raw)),
    )
    if isinstance(signed, web.Response):
        return signed
    form = dict(_form(signed[1]))
    sid, word = form.get("MessageSid", ""), form.get("MessageStatus", "")
    if not sid or not word:
        return _error(400, "invalid_request", "MessageSid and MessageStatus are required")
    error = form.get("ErrorCode") or None
    report = StatusReport(channel_id=cid, message_id=sid, status=word, error=error)
    await _keep(request.app[HOOKS].store, [report])
    return web.Response(status=200)


def _form(raw: bytes) -> list[tuple[str, str]]:
    return parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)


async def _keep(store: Store, reports: list[StatusReport]) -> int:
    kept = 0
    for report in reports:
        kept += bool(await store.add_status_report(report))
    return kept


def add_hook_routes(app: web.Application, state: HookState) -> None:
    app[HOOKS] = state
    app.router.add_get("/hooks/whatsapp/{channel_id}", whatsapp_handshake)
    app.router.add_post("/hooks/whatsapp/{channel_id}", whatsapp_status)
    app.router.add_post("/hooks/sms/{channel_id}", sms_status)
