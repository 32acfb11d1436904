"""The OpenAPI 3.1 description of every /api/* route, served at GET /api/openapi.json.

Built in code from the same constants the routes and models use (states, error codes,
the id pattern, limits), so that the document cannot drift from them unnoticed;
tests/integration/test_openapi.py compares its paths with the routes the daemon serves
and checks real answers against its schemas.
"""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

from broadcaster import VERSION
from broadcaster.intake import MAX_PAYLOAD_BYTES, sign
from broadcaster.models import (
    ID_PATTERN,
    REASON_MAX_LENGTH,
    AlertState,
    DeliveryState,
    ErrorCode,
    Mode,
)
from broadcaster.receipts import RECEIPT_STATES

PATH = "/api/openapi.json"
LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 500

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: Schema, description: str, **extra: Any) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


_DATETIME: Schema = {"type": "string", "format": "date-time"}
_ID: Schema = {"type": "string", "pattern": ID_PATTERN}

# The worked example of docs/signing.md, signed with its example secret.
EXAMPLE_SECRET = "example-trigger-secret-2026"
_UNSIGNED_EXAMPLE = {
    "id": "FW-DUS-2026-000123",
    "scenario": "major_fire",
    "stage": "warning",
    "incident": "E-2026-4711",
    "mode": "drill",
    "issued_at": "2026-11-23T10:15:00+01:00",
    "params": {"location": "Ackerstraße 12", "district": "Flingern-Nord"},
}
_TRIGGER_EXAMPLE = {**_UNSIGNED_EXAMPLE, "signature": sign(_UNSIGNED_EXAMPLE, EXAMPLE_SECRET)}

_SCHEMAS: dict[str, Schema] = {
    "Trigger": {
        "type": "object",
        "description": "A request to warn the public, from the fire brigade's dispatch "
        "system. Checked in this order, the first failure is the error: invalid_json, "
        "invalid_trigger, bad_signature, stale, duplicate, unknown_scenario, unknown_stage, "
        f"invalid_params, template_not_approved. At most {MAX_PAYLOAD_BYTES} bytes of UTF-8.",
        "required": ["id", "scenario", "mode", "issued_at"],
        "additionalProperties": False,
        "properties": {
            "id": {
                **_ID,
                "description": "The alert's id and its idempotency key: the same id again "
                "never sends anything twice.",
            },
            "scenario": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "The playbook id, e.g. major_fire.",
            },
            "stage": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "Default: the playbook's first stage.",
            },
            "incident": {
                **_ID,
                "description": "Default: the id. Later stages of one incident are threaded "
                "under its first post where the channel allows it.",
            },
            "mode": {
                "enum": list(get_args(Mode)),
                "description": "Required, no default. A drill follows the same path, "
                "confirmation included, and reaches only channels with drill: send.",
            },
            "issued_at": {
                **_DATETIME,
                "description": "ISO 8601 with a UTC offset. Older than "
                "security.max_trigger_age, or more than 2 minutes ahead: refused as stale.",
            },
            "params": {
                "type": "object",
                "description": "The playbook's params by name (docs/playbooks.md).",
            },
            "signature": {
                "type": "string",
                "pattern": "^[0-9a-fA-F]{64}$",
                "description": "Hex HMAC-SHA256 of the payload without signature, keys "
                "sorted, separators , and :, non-ASCII kept, UTF-8; key: "
                "security.trigger_secret. Required when a secret is set (docs/signing.md).",
            },
        },
        "examples": [_TRIGGER_EXAMPLE],
    },
    "Recipients": {
        "type": "object",
        "description": "Channels with several recipients (SMS, e-mail, WhatsApp): per "
        "recipient. delivered: accepted by the provider.",
        "required": ["total", "delivered", "failed"],
        "properties": {
            "total": {"type": "integer", "minimum": 0},
            "delivered": {"type": "integer", "minimum": 0},
            "failed": {"type": "integer", "minimum": 0},
            "receipts": {
                "type": "object",
                "description": "SMS and WhatsApp, GET /api/alerts/{alert_id} only: how many "
                "accepted recipients stand at each state by the provider's receipts (the "
                "furthest reported). pending: no receipt yet (or queued at Twilio); sent: "
                "handed to the carrier or WhatsApp; delivered: on the phone; read: opened "
                "(WhatsApp); undelivered: the carrier could not deliver it (SMS); failed: "
                "refused after acceptance.",
                "required": list(RECEIPT_STATES),
                "properties": {
                    state: {"type": "integer", "minimum": 0} for state in RECEIPT_STATES
                },
            },
        },
    },
    "RecipientOutcome": {
        "type": "object",
        "required": ["recipient", "accepted", "message_id", "error", "outcome"],
        "properties": {
            "recipient": {"type": "string", "description": "A number or an address."},
            "accepted": {"type": "boolean", "description": "Accepted by the provider."},
            "message_id": {
                **_nullable({"type": "string"}),
                "description": "The provider's id of this recipient's message (SMS sid, "
                "wamid, Message-ID).",
            },
            "error": {
                **_nullable({"type": "string"}),
                "description": "Why it was not accepted (yet).",
            },
            "outcome": {
                "enum": ["accepted", "refused", "in_flight", "not_yet"],
                "description": "refused: for good; in_flight: sent, answer not known; "
                "not_yet: to be tried again.",
            },
            "receipt": {
                "enum": list(RECEIPT_STATES),
                "description": "SMS and WhatsApp, accepted recipients: the receipt's state.",
            },
            "status": {
                **_nullable({"type": "string"}),
                "description": "The provider's own word for it (queued, sent, read, ...).",
            },
            "status_error": {
                **_nullable({"type": "string"}),
                "description": "The provider's error code and words, when it gave them.",
            },
            "status_at": _nullable(_DATETIME),
        },
    },
    "DeliveryDetail": {
        "description": "One delivery, with each recipient's outcome and receipt.",
        "allOf": [
            _ref("Delivery"),
            {
                "type": "object",
                "required": ["alert_id", "channel_id", "channel_type", "recipient_list"],
                "properties": {
                    "alert_id": {"type": "string"},
                    "channel_id": {"type": "string"},
                    "channel_type": {"type": "string"},
                    "recipient_list": {
                        "type": "array",
                        "items": _ref("RecipientOutcome"),
                        "description": "Empty for channels with one post (Mastodon, ...).",
                    },
                },
            },
        ],
    },
    "Delivery": {
        "type": "object",
        "description": "The alert on one public channel.",
        "required": ["state", "attempts", "remote_id", "url", "error", "delivered_at"],
        "properties": {
            "state": {"enum": list(get_args(DeliveryState))},
            "attempts": {
                "type": "integer",
                "minimum": 0,
                "description": "Provider requests made for this delivery.",
            },
            "remote_id": {
                **_nullable({"type": "string"}),
                "description": "The provider's id of the post.",
            },
            "url": {**_nullable({"type": "string"}), "description": "The post's address."},
            "error": {
                **_nullable({"type": "string"}),
                "description": "The provider's message when it failed.",
            },
            "delivered_at": _nullable(_DATETIME),
            "recipients": {
                **_ref("Recipients"),
                "description": "SMS and e-mail only: delivered only when all were.",
            },
            "detail": {
                "type": "string",
                "description": "The provider's own line about it, e.g. Instagram's "
                "'43 of 50 posts left in 24 h (10 kept for updates and corrections)'.",
            },
            "manual_task": {
                **_ref("ManualTask"),
                "description": "Only when a person must act here: a retracted post that "
                "the provider's API cannot delete (Instagram), or whose deletion failed.",
            },
        },
    },
    "ManualTask": {
        "type": "object",
        "description": "Work a person must do by hand on a channel; open while done_at "
        "is null (`broadcaster task done <alert> <channel>` marks it done).",
        "required": ["task", "url", "created_at", "done_at", "done_by"],
        "properties": {
            "task": {
                "type": "string",
                "examples": ["delete post https://www.instagram.com/p/C0ffee/ by hand"],
            },
            "url": {**_nullable({"type": "string"}), "description": "The post to act on."},
            "created_at": _DATETIME,
            "done_at": _nullable(_DATETIME),
            "done_by": _nullable({"type": "string"}),
        },
    },
    "Alert": {
        "type": "object",
        "description": "An accepted trigger and where it stands; the same JSON is "
        "retained on MQTT <prefix>/alerts/<id>.",
        "required": [
            "id",
            "incident",
            "scenario",
            "stage",
            "mode",
            "state",
            "created_at",
            "confirmed_by",
            "deliveries",
        ],
        "properties": {
            "id": {
                "type": "string",
                "description": "The trigger's id; a correction is <id>:retraction.",
            },
            "incident": {"type": "string"},
            "scenario": {"type": "string"},
            "stage": {"type": "string"},
            "mode": {"enum": list(get_args(Mode))},
            "state": {"enum": list(get_args(AlertState))},
            "created_at": _DATETIME,
            "confirmed_by": {
                **_nullable({"type": "string"}),
                "description": "The duty officer who released it (null before, or when "
                "no confirmation was needed).",
            },
            "deliveries": {
                "type": "object",
                "description": "By channel id; public channels only.",
                "additionalProperties": _ref("Delivery"),
            },
        },
    },
    "RetractRequest": {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "reason": {
                "type": "string",
                "minLength": 1,
                "maxLength": REASON_MAX_LENGTH,
                "description": "One line, shown in the correction on every channel.",
            }
        },
        "examples": [{"reason": "Fehlalarm der Brandmeldeanlage"}],
    },
    "Retraction": {
        "description": "The retracted alert, with its correction's id.",
        "allOf": [
            _ref("Alert"),
            {
                "type": "object",
                "properties": {
                    "correction": {
                        "type": "string",
                        "description": "The correction's own alert id (<id>:retraction); "
                        "absent when the alert was still awaiting confirmation and was "
                        "simply cancelled.",
                    },
                    "detail": {
                        "type": "string",
                        "description": "A note on the retraction, e.g. that no channel "
                        "had carried the alert, or which retraction template could not be "
                        "used when the built-in correction text went out instead.",
                    },
                },
            },
        ],
    },
    "Refusal": {
        "type": "object",
        "description": "A refused input, as published on MQTT <prefix>/errors.",
        "required": ["trigger_id", "error", "detail", "received_at"],
        "properties": {
            "trigger_id": {
                **_nullable({"type": "string"}),
                "description": "The trigger's id when it could be read.",
            },
            "error": {"enum": list(get_args(ErrorCode))},
            "detail": {"type": "string", "description": "What was wrong, for a person."},
            "received_at": _DATETIME,
        },
    },
    "RefusalRecord": {
        "description": "A kept refusal (every one but duplicate).",
        "allOf": [
            _ref("Refusal"),
            {
                "type": "object",
                "required": ["source"],
                "properties": {
                    "source": {
                        "type": "string",
                        "description": "Where it came from: mqtt, http.",
                    },
                    "scenario": {
                        **_nullable({"type": "string"}),
                        "description": "When readable.",
                    },
                    "mode": {
                        **_nullable({"enum": list(get_args(Mode))}),
                        "description": "When readable.",
                    },
                },
            },
        ],
    },
    "SetAside": {
        "type": "object",
        "description": "A file that could not be loaded; the rest keeps working.",
        "required": ["kind", "id", "file", "error"],
        "properties": {
            "kind": {"enum": ["playbook", "channel", "approvals", "settings"]},
            "id": {
                **_nullable({"type": "string"}),
                "description": "The playbook's or channel's id.",
            },
            "file": {"type": "string"},
            "error": {"type": "string"},
        },
    },
    "SelftestResult": {
        "type": "object",
        "required": ["ok", "alert_id", "answered", "failed", "refused"],
        "properties": {
            "ok": {"type": "boolean"},
            "alert_id": {"type": "string"},
            "answered": {"type": "array", "items": {"type": "string"}},
            "failed": {"type": "object", "additionalProperties": {"type": "string"}},
            "refused": _nullable({"type": "string"}),
        },
    },
    "ReloadResult": {
        "type": "object",
        "required": ["loaded", "set_aside", "changed"],
        "properties": {
            "loaded": {
                "type": "object",
                "required": ["playbooks", "channels"],
                "properties": {
                    "playbooks": {"type": "array", "items": {"type": "string"}},
                    "channels": {"type": "array", "items": {"type": "string"}},
                },
            },
            "set_aside": {"type": "array", "items": _ref("SetAside")},
            "changed": {
                "type": "boolean",
                "description": "Whether anything differs from what was loaded before.",
            },
        },
    },
    "AuditEntry": {
        "type": "object",
        "required": ["at", "actor", "event", "detail"],
        "properties": {
            "at": _DATETIME,
            "actor": {
                "type": "string",
                "description": "Who: a duty officer's name, mqtt, http, system, ...",
            },
            "event": {
                "type": "string",
                "description": "What: trigger_received, confirmation_requested, released, "
                "delivered, retracted, correction_created, ...",
            },
            "detail": {"type": "object"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {
                "type": "string",
                "description": "unauthorized, not_found, conflict, invalid_json, "
                "invalid_request, bad_request, unavailable, internal_error",
            },
            "detail": {"type": "string", "description": "What to do about it."},
        },
    },
    "OpenApiDocument": {"type": "object", "description": "This document."},
}

_RESPONSES: dict[str, Schema] = {
    "Unauthorized": _json(
        _ref("Error"), "No token, a wrong or malformed one, or http.api_token is not set."
    ),
    "NotFound": _json(_ref("Error"), "No such alert (error: not_found)."),
    "Unavailable": _json(
        _ref("Error"),
        "The store is away or the daemon is shutting down (error: unavailable): try again.",
        headers={
            "Retry-After": {
                "description": "Seconds to wait, when the store is away.",
                "schema": {"type": "integer"},
            }
        },
    ),
}

_PARAMETERS: dict[str, Schema] = {
    "AlertId": {
        "name": "alert_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The alert's id (the trigger's id; a correction: <id>:retraction).",
    },
    "ChannelId": {
        "name": "channel_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The channel's id (its file name in channels/).",
    },
    "Limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": LIST_LIMIT_MAX,
            "default": LIST_LIMIT_DEFAULT,
        },
        "description": f"How many, newest first (kept within 1 to {LIST_LIMIT_MAX}).",
    },
}

_COMMON = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "503": {"$ref": "#/components/responses/Unavailable"},
}
_NOT_FOUND = {"404": {"$ref": "#/components/responses/NotFound"}}
_ALERT_ID = [{"$ref": "#/components/parameters/AlertId"}]
_LIMIT = [{"$ref": "#/components/parameters/Limit"}]


def _array(name: str) -> Schema:
    return {"type": "array", "items": _ref(name)}


_PATHS: dict[str, Schema] = {
    "/api/triggers": {
        "post": {
            "operationId": "postTrigger",
            "summary": "Send a trigger (signed when security.trigger_secret is set)",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("Trigger")}},
            },
            "responses": {
                "202": _json(_ref("Alert"), "Accepted: the new alert."),
                "200": _json(_ref("Alert"), "A duplicate id: the existing alert; nothing sent."),
                "400": _json(_ref("Refusal"), "Refused: the first failed check; nothing sent."),
                **_COMMON,
            },
        }
    },
    "/api/alerts": {
        "get": {
            "operationId": "listAlerts",
            "summary": "Recent alerts, newest first",
            "parameters": _LIMIT,
            "responses": {
                "200": _json(_array("Alert"), "The alerts."),
                "400": _json(_ref("Error"), "limit is not a number (error: bad_request)."),
                **_COMMON,
            },
        }
    },
    "/api/alerts/{alert_id}": {
        "get": {
            "operationId": "getAlert",
            "summary": "One alert and its deliveries",
            "parameters": _ALERT_ID,
            "responses": {"200": _json(_ref("Alert"), "The alert."), **_NOT_FOUND, **_COMMON},
        }
    },
    "/api/alerts/{alert_id}/retract": {
        "post": {
            "operationId": "retractAlert",
            "summary": "Retract a false alarm (no confirmation: speed matters most)",
            "parameters": _ALERT_ID,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("RetractRequest")}},
            },
            "responses": {
                "202": _json(
                    _ref("Retraction"),
                    "Accepted: the alert is retracted; the correction goes to every channel "
                    "that carried it, then the original is deleted where the channel allows.",
                ),
                "400": _json(
                    _ref("Error"),
                    "The body is not JSON (invalid_json) or the reason is missing, too long "
                    "or holds refused characters (invalid_request).",
                ),
                **_NOT_FOUND,
                "409": _json(
                    _ref("Error"), "Cannot be retracted, e.g. already retracted (conflict)."
                ),
                **_COMMON,
            },
        }
    },
    "/api/alerts/{alert_id}/audit": {
        "get": {
            "operationId": "getAudit",
            "summary": "The alert's audit trail, oldest first",
            "parameters": _ALERT_ID,
            "responses": {
                "200": _json(_array("AuditEntry"), "Every event with its time, actor, detail."),
                **_NOT_FOUND,
                **_COMMON,
            },
        }
    },
    "/api/alerts/{alert_id}/deliveries/{channel_id}": {
        "get": {
            "operationId": "getDelivery",
            "summary": "One delivery with each recipient's outcome and receipt",
            "parameters": [*_ALERT_ID, {"$ref": "#/components/parameters/ChannelId"}],
            "responses": {
                "200": _json(_ref("DeliveryDetail"), "The delivery and its recipients."),
                "404": _json(
                    _ref("Error"), "No such alert, or no delivery to that channel (not_found)."
                ),
                **_COMMON,
            },
        }
    },
    "/api/refusals": {
        "get": {
            "operationId": "listRefusals",
            "summary": "Refused inputs, newest first (every refusal but duplicate)",
            "parameters": _LIMIT,
            "responses": {"200": _json(_array("RefusalRecord"), "The refusals."), **_COMMON},
        }
    },
    "/api/reload": {
        "post": {
            "operationId": "reload",
            "summary": "Reload playbooks, templates, approvals and channels",
            "description": "Validated first; a broken playbook or channel file is set "
            "aside with its error and the others keep working.",
            "responses": {
                "200": _json(_ref("ReloadResult"), "What was loaded and what was set aside."),
                **_COMMON,
            },
        }
    },
    "/api/selftest": {
        "post": {
            "operationId": "selftest",
            "summary": "Run the self-test now: a drill to every `drill: send` channel",
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "description": "Another drill than `selftest:` of broadcaster.yaml",
                            "properties": {
                                "playbook": {"type": "string"},
                                "stage": _nullable({"type": "string"}),
                                "params": {"type": "object"},
                            },
                        }
                    }
                },
            },
            "description": "Answers once each such channel answered or its delivery "
            "deadline passed; a failure is told to the duty officers.",
            "responses": {
                "200": _json(_ref("SelftestResult"), "Which channels answered, which not."),
                "400": _json(
                    _ref("Error"),
                    "No `selftest:` in broadcaster.yaml and no playbook named in the body, "
                    "or a body that is no self-test (error: invalid_request).",
                ),
                **_COMMON,
            },
        }
    },
    PATH: {
        "get": {
            "operationId": "getOpenApi",
            "summary": "This document (no token needed)",
            "security": [],
            "responses": {"200": _json(_ref("OpenApiDocument"), "OpenAPI 3.1, JSON.")},
        }
    },
}


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once; callers must not change it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "broadcaster HTTP API",
            "version": VERSION,
            "description": "Triggers, alerts, retraction, refusals, reload and the audit "
            "trail of the broadcaster daemon. Every route but this document needs "
            "`Authorization: Bearer <http.api_token>`.",
        },
        "security": [{"bearer": []}],
        "paths": _PATHS,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "http.api_token of broadcaster.yaml.",
                }
            },
            "schemas": _SCHEMAS,
            "responses": _RESPONSES,
            "parameters": _PARAMETERS,
        },
    }
