"""HTTP routes of contract section 8: /healthz, /metrics, /api/*."""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from broadcaster.audit import public_entry
from broadcaster.intake import MAX_PAYLOAD_BYTES
from broadcaster.metrics import OPEN_STATES, Metrics
from broadcaster.models import reason_problem, utcnow
from broadcaster.receipts import add_receipt_counts
from broadcaster.receiving import Receiver
from broadcaster.refusals import recent_refusals
from broadcaster.retraction import Retractor
from broadcaster.store.base import Store
from broadcaster.store.outage import StoreUnavailable
from broadcaster.web import openapi
from broadcaster.web.guard import secure_headers
from broadcaster.web.proxy import forwarded_middleware, networks

log = structlog.get_logger(__name__)


@dataclass
class WebState:
    receiver: Receiver
    store: Store
    metrics: Metrics
    api_token: str | None
    healthy: Callable[[], Awaitable[dict[str, bool]]]
    retractor: Retractor
    owner: str = "http"  # this daemon's process id, for the inbox claim of an HTTP trigger
    reload: Callable[[], Awaitable[dict[str, Any]]] | None = None
    accepting: bool = True  # false while shutting down


STATE = web.AppKey("state", WebState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# GET / for browsers (web/warnings.py sets it): the warning page; None means the JSON index.
HOME: web.AppKey[Callable[[web.Request], Awaitable[web.StreamResponse | None]]] = web.AppKey("home")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda d: json.dumps(d, ensure_ascii=False)
    )


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An error is a JSON answer that says what to do, never a bare 500 with a traceback."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        detail = f"no such path {request.path!r}; the HTTP API is described at {openapi.PATH}"
        return _json({"error": "not_found", "detail": detail}, 404)
    except web.HTTPException:
        raise
    except StoreUnavailable as exc:
        log.error("request_failed", path=request.path, error=str(exc))
        return _json(
            {"error": "unavailable", "detail": f"{exc}; try again shortly"},
            503,
            headers={"Retry-After": "5"},
        )
    except Exception:
        log.exception("request_failed", path=request.path)
        return _json({"error": "internal_error", "detail": "see the daemon's log"}, 500)


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /api/* call but the OpenAPI document needs `Authorization: Bearer <api_token>`;
    none configured: 401."""
    if request.path.startswith("/api/") and request.path != openapi.PATH:
        token = request.app[STATE].api_token
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if token is None:
            return _json(
                {"error": "unauthorized", "detail": "the HTTP API is off: set http.api_token"}, 401
            )
        # aiohttp hands undecodable header bytes over as surrogates: surrogatepass encodes
        # them instead of raising, so a malformed header is a wrong token, not a 500.
        given_bytes = value.encode("utf-8", "surrogatepass")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given_bytes, token.encode()):
            return _json({"error": "unauthorized", "detail": "missing or wrong bearer token"}, 401)
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    parts = await request.app[STATE].healthy()
    return _json(parts, 200 if all(parts.values()) else 503)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    await state.healthy()  # broadcaster_store_up and _mqtt_up as of this scrape
    # The unfinished alerts, as the store has them now; when it is down,
    # broadcaster_store_up says so and the other figures still answer.
    with contextlib.suppress(StoreUnavailable):
        state.metrics.count_open(await state.store.alerts_in_state(*OPEN_STATES), utcnow())
    body = state.metrics.render()
    return web.Response(
        body=body,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def post_trigger(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not state.accepting:
        return _json({"error": "unavailable", "detail": "shutting down"}, 503)
    raw = await request.content.read(MAX_PAYLOAD_BYTES + 1)
    outcome = await state.receiver.receive_trigger(raw, "http", owner=state.owner)
    status = {"accepted": 202, "duplicate": 200, "refused": 400}[outcome.result]
    if outcome.alert is not None:  # its state now, not as it was received
        alert = await state.store.get_alert(outcome.alert.id) or outcome.alert
        return _json(alert.public(await state.store.get_deliveries(alert.id)), status)
    return _json(outcome.public(), status)


async def list_alerts(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    try:
        limit = min(500, max(1, int(request.query.get("limit", "50"))))
    except ValueError:
        return _json({"error": "bad_request", "detail": "limit must be a number"}, 400)
    alerts = await store.list_alerts(limit)
    return _json([a.public(await store.get_deliveries(a.id)) for a in alerts])


async def list_refusals(request: web.Request) -> web.Response:
    """GET /api/refusals: refused input, newest first (duplicates are in their alert's trail)."""
    try:
        limit = min(500, max(1, int(request.query.get("limit", "50"))))
    except ValueError:
        return _json({"error": "bad_request", "detail": "limit must be a number"}, 400)
    return _json(await recent_refusals(request.app[STATE].store, limit))


async def post_reload(request: web.Request) -> web.Response:
    """POST /api/reload: playbooks, templates, approvals and channels, validated first."""
    reload = request.app[STATE].reload
    if reload is None:
        return _json({"error": "unavailable", "detail": "nothing to reload here"}, 503)
    report = await reload()
    return _json(report, 409 if "error" in report else 200)


async def get_alert(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    alert = await store.get_alert(request.match_info["alert_id"])
    if alert is None:
        return _json({"error": "not_found", "detail": "no such alert"}, 404)
    deliveries = await store.get_deliveries(alert.id)
    body = alert.public(deliveries)
    await add_receipt_counts(store, deliveries, body)  # SMS and WhatsApp receipts
    return _json(body)


async def alert_audit(request: web.Request) -> web.Response:
    """GET /api/alerts/{id}/audit: the alert's audit trail, oldest first."""
    store = request.app[STATE].store
    alert_id = request.match_info["alert_id"]
    if await store.get_alert(alert_id) is None:
        return _json({"error": "not_found", "detail": f"no alert {alert_id!r}"}, 404)
    return _json([public_entry(e) for e in await store.audit_trail(alert_id)])


async def index(request: web.Request) -> web.StreamResponse:
    """GET /: the warning page for browsers; for `Accept: application/json`, where to go
    from here, instead of a bare 404."""
    home = request.app.get(HOME)
    if home is not None and (page := await home(request)) is not None:
        return page
    return _json(
        {
            "service": "broadcaster",
            "api": openapi.PATH,
            "health": "/healthz",
            "cap_feed": "/cap/feed.atom",
            "warnings": "/warnings",
        },
        headers={"Vary": "Accept"},
    )


async def retract_alert(request: web.Request) -> web.Response:
    """POST /api/alerts/{id}/retract {"reason": "..."}: no confirmation, speed matters most."""
    state = request.app[STATE]
    try:
        body = await request.json()
    except ValueError:
        return _json({"error": "invalid_json", "detail": 'expected {"reason": "..."}'}, 400)
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        return _json({"error": "invalid_request", "detail": "reason is required"}, 400)
    if problem := reason_problem(reason):
        return _json({"error": "invalid_request", "detail": f"reason: {problem}"}, 400)
    result = await state.retractor.retract(request.match_info["alert_id"], reason.strip(), "http")
    if result.outcome == "not_found":
        return _json({"error": "not_found", "detail": result.detail}, 404)
    if result.outcome == "not_retractable":
        return _json({"error": "conflict", "detail": result.detail}, 409)
    assert result.alert is not None
    body = result.alert.public(await state.store.get_deliveries(result.alert.id))
    if result.correction is not None:
        body["correction"] = result.correction.id
    if result.detail:
        body["detail"] = result.detail
    return _json(body, 202)


async def openapi_document(request: web.Request) -> web.Response:
    """GET /api/openapi.json: the API's description, readable without a token."""
    return _json(openapi.document())


def make_app(state: WebState, trusted_proxies: Sequence[str] = ()) -> web.Application:
    # The proxy's word first: every later step sees the client's address and scheme.
    middlewares: list[Middleware] = [json_errors, require_token]
    if trusted_proxies:
        middlewares.insert(0, forwarded_middleware(networks(trusted_proxies)))
    app = web.Application(
        middlewares=middlewares,
        client_max_size=MAX_PAYLOAD_BYTES + 1,
    )
    app[STATE] = state
    app.on_response_prepare.append(secure_headers)
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/triggers", post_trigger)
    app.router.add_get("/api/alerts", list_alerts)
    app.router.add_get("/api/refusals", list_refusals)
    app.router.add_post("/api/reload", post_reload)
    app.router.add_get("/api/alerts/{alert_id}", get_alert)
    app.router.add_get("/api/alerts/{alert_id}/audit", alert_audit)
    app.router.add_post("/api/alerts/{alert_id}/retract", retract_alert)
    app.router.add_get(openapi.PATH, openapi_document)
    return app
