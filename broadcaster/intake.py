"""The intake: raw trigger and retraction bytes to checked records (contract sections 6, 7).

Shared by MQTT and HTTP, and pure: no I/O, no store, no clock (`now` is passed in).
The contract's checks run in its order and the first failure is the one reported:
invalid_json, invalid_trigger (schema), bad_signature, stale; the caller checks for a
duplicate id, then `resolve` checks unknown_scenario, unknown_stage and invalid_params.

Both the fire brigade's dispatch system and attackers send to this, so every input ends
either in a valid record or in a `Refusal`, and a refusal's detail never echoes a huge or
unprintable value into the logs or onto MQTT.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import ValidationError

from broadcaster.durations import format_duration
from broadcaster.models import ID_PATTERN, ErrorCode, RetractRequest, Trigger, reason_problem
from broadcaster.playbooks import ParamError, Playbook, validate_params

MAX_PAYLOAD_BYTES = 64 * 1024
# Deeper JSON has no use in a trigger and only risks recursion limits further on.
MAX_NESTING = 32
# A sender's clock may run a little ahead; more than this is refused as stale.
MAX_CLOCK_AHEAD = timedelta(minutes=2)

_ID = re.compile(ID_PATTERN)
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# An explicit UTC offset is required: "Z" or +HH:MM. Pydantic alone would also take
# Unix timestamps ("1700000000"), which carry no offset.
_ISSUED_AT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})"
)
_ISSUED_AT_HINT = (
    "must be an ISO 8601 date and time with a UTC offset, e.g. 2026-11-23T10:15:00+01:00"
)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

_SHOWN_CHARS = 60  # of a value or key quoted in a detail
_MESSAGE_CHARS = 200  # of one message in a detail
_MESSAGES_SHOWN = 10  # messages listed in one detail, then "and N more"
_DETAIL_CHARS = 2000  # of a whole detail


class Refusal(Exception):
    """A refused input: an error code of contract section 7, what was wrong, and whose."""

    error: ErrorCode
    detail: str
    trigger_id: str | None

    def __init__(self, error: ErrorCode, detail: str, trigger_id: str | None = None) -> None:
        if len(detail) > _DETAIL_CHARS:
            detail = detail[: _DETAIL_CHARS - 1] + "…"
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail
        # Only an id that is one, never whatever an attacker put there.
        self.trigger_id = readable_id(trigger_id)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.error, self.detail, self.trigger_id))

    def public(self, received_at: datetime) -> dict[str, Any]:
        """The errors JSON of contract section 7."""
        return {
            "trigger_id": self.trigger_id,
            "error": self.error,
            "detail": self.detail,
            "received_at": received_at.isoformat(),
        }


def readable_id(value: object) -> str | None:
    """`value` when it is a valid trigger id, else None."""
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    return None


_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def readable_context(raw: bytes) -> dict[str, str]:
    """Of a refused payload, what can safely be said: its scenario, stage and mode, when
    they are plain names (never whatever an attacker put there)."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        return {}
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(payload, dict):
        return {}
    found = {
        key: value
        for key in ("scenario", "stage", "mode")
        if isinstance(value := payload.get(key), str) and _NAME.fullmatch(value)
    }
    if found.get("mode") not in (None, "live", "drill"):
        del found["mode"]
    return found


def canonical_bytes(payload: Mapping[str, Any]) -> bytes:
    """What a signature covers: the payload without `signature`, sorted, compact, UTF-8."""
    body = {key: value for key, value in payload.items() if key != "signature"}
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def sign(payload: Mapping[str, Any], secret: str) -> str:
    """The hex HMAC-SHA256 of `canonical_bytes(payload)` with the trigger secret."""
    return hmac.new(secret.encode("utf-8"), canonical_bytes(payload), hashlib.sha256).hexdigest()


def parse_trigger(
    raw: bytes | str, *, secret: str | None, max_age: timedelta, now: datetime
) -> Trigger:
    """A trigger checked for invalid_json, invalid_trigger, bad_signature and stale, in order."""
    return _parse(raw, Trigger, "id", secret=secret, max_age=max_age, now=now)


def parse_retraction(
    raw: bytes | str, *, secret: str | None, max_age: timedelta, now: datetime
) -> RetractRequest:
    """A retraction from MQTT, checked like a trigger (invalid_trigger for a bad schema)."""
    return _parse(raw, RetractRequest, "alert_id", secret=secret, max_age=max_age, now=now)


def resolve(
    trigger: Trigger, playbooks: Mapping[str, Playbook], set_aside: Mapping[str, str] | None = None
) -> tuple[Playbook, str, dict[str, Any]]:
    """The trigger's playbook, stage and validated params; or unknown_scenario,
    unknown_stage or invalid_params, in that order. A playbook set aside (its files are
    broken) is unknown, with why."""
    playbook = playbooks.get(trigger.scenario)
    why = (set_aside or {}).get(trigger.scenario)
    if playbook is None and why is not None:
        raise Refusal(
            "unknown_scenario",
            f"playbook {trigger.scenario} is not loaded: {why}",
            trigger.id,
        )
    if playbook is None:
        known = ", ".join(sorted(playbooks)) or "none"
        raise Refusal(
            "unknown_scenario",
            f"unknown scenario {_quote(trigger.scenario)} (known: {known})",
            trigger.id,
        )
    stage = trigger.stage if trigger.stage is not None else playbook.default_stage
    if stage not in playbook.stages:
        raise Refusal(
            "unknown_stage",
            f"scenario {playbook.id!r} has no stage {_quote(stage)} "
            f"(stages: {', '.join(playbook.stages)})",
            trigger.id,
        )
    try:
        params = validate_params(playbook, dict(trigger.params))
    except ParamError as exc:
        raise Refusal("invalid_params", _join(exc.messages), trigger.id) from None
    except OverflowError:
        # playbooks._number converts with float(), which overflows for a huge integer.
        # parse_trigger refuses such numbers already; this guards a Trigger built elsewhere.
        raise Refusal("invalid_params", "a number param is out of range", trigger.id) from None
    return playbook, stage, params


# --- the checks --------------------------------------------------------------------------

_Record = TypeVar("_Record", Trigger, RetractRequest)


def _parse(
    raw: bytes | str,
    model: type[_Record],
    id_key: str,
    *,
    secret: str | None,
    max_age: timedelta,
    now: datetime,
) -> _Record:
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    payload = _load_object(raw, id_key)
    record_id = readable_id(payload.get(id_key))
    record = _validate(model, payload, record_id)
    _check_signature(payload, record.signature, secret, record_id)
    _check_age(record.issued_at, now, max_age, record_id)
    return record


class _JsonProblem(ValueError):
    """Raised from inside json.loads by the hooks below."""


def _load_object(raw: bytes | str, id_key: str) -> dict[str, Any]:
    """The payload as a JSON object, or invalid_json saying what is wrong."""
    text = _decode(raw)
    if not text.strip():
        raise Refusal("invalid_json", "the payload is empty")
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except _JsonProblem as exc:
        raise Refusal("invalid_json", str(exc)) from None
    except json.JSONDecodeError as exc:
        raise Refusal("invalid_json", f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise Refusal("invalid_json", f"nested deeper than {MAX_NESTING} levels") from None
    except ValueError as exc:  # not expected past the hooks; still a broken payload
        raise Refusal("invalid_json", _cut(str(exc), _MESSAGE_CHARS)) from None
    if not isinstance(value, dict):
        raise Refusal("invalid_json", f"must be a JSON object {{...}}, got {_json_kind(value)}")
    problem = _structure_problem(value)
    if problem:
        raise Refusal("invalid_json", problem, readable_id(value.get(id_key)))
    return value


def _decode(raw: bytes | str) -> str:
    """The payload as text, at most MAX_PAYLOAD_BYTES of UTF-8."""
    if isinstance(raw, str):
        # Cheap first: a character is at least one byte.
        size = (
            len(raw) if len(raw) > MAX_PAYLOAD_BYTES else len(raw.encode("utf-8", "surrogatepass"))
        )
        text = raw
    else:
        size = len(raw)
        text = ""
    if size > MAX_PAYLOAD_BYTES:
        raise Refusal(
            "invalid_json",
            f"the payload is {size} bytes, more than the {MAX_PAYLOAD_BYTES} allowed",
        )
    if isinstance(raw, str):
        return text
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal("invalid_json", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    # RFC 8259 lets a parser ignore a byte order mark; some senders write one.
    return text.removeprefix("\ufeff")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice makes the signature ambiguous: which value did the sender sign?
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _JsonProblem(f"duplicate key {_quote(key)}")
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise _JsonProblem(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _JsonProblem(f"number {_cut(text, _SHOWN_CHARS)} is out of range")
    return value


def _int(text: str) -> int:
    # Beyond a double's range a number cannot be checked (float() overflows) nor
    # exchanged reliably between systems (RFC 7493). The length test comes first, as
    # int() of a very long text is slow and refused by Python beyond 4300 digits.
    value = int(text) if len(text) <= 400 else None
    if value is None or abs(value) > sys.float_info.max:
        raise _JsonProblem(f"number {_cut(text, _SHOWN_CHARS)} is out of range")
    return value


def _structure_problem(value: Any) -> str | None:
    """Too deep nesting, or a string that is not valid Unicode (a lone surrogate)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_NESTING:
                return f"nested deeper than {MAX_NESTING} levels"
            if isinstance(item, dict):
                for key, inner in item.items():
                    stack.append((key, depth))
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return f"string {_quote(item)} is not valid Unicode (a lone surrogate)"
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    return "a number"


def _validate(model: type[_Record], payload: dict[str, Any], record_id: str | None) -> _Record:
    """The schema check (invalid_trigger), naming every wrong field."""
    messages: list[str] = []
    record: _Record | None = None
    issued_at = payload.get("issued_at")
    own_issued_at = "issued_at" in payload and not (
        isinstance(issued_at, str) and _ISSUED_AT.fullmatch(issued_at)
    )
    try:
        record = model.model_validate(payload)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            if own_issued_at and error["loc"][:1] == ("issued_at",):
                continue
            field = ".".join(_field_name(part) for part in error["loc"]) or "payload"
            if error["type"] == "extra_forbidden":
                allowed = ", ".join(model.model_fields)
                messages.append(f"{field}: unknown field (allowed: {allowed})")
            else:
                messages.append(f"{field}: {error['msg']}")
    if own_issued_at:
        messages.append(f"issued_at: {_ISSUED_AT_HINT}")
    reason = payload.get("reason")
    checked = any(message.startswith("reason:") for message in messages)  # by the model
    if (
        model is RetractRequest
        and isinstance(reason, str)
        and not checked
        and (problem := reason_problem(reason))
    ):
        messages.append(f"reason: {problem}")
    if messages or record is None:
        raise Refusal("invalid_trigger", _join(messages), record_id)
    return record


def _check_signature(
    payload: Mapping[str, Any], signature: str | None, secret: str | None, record_id: str | None
) -> None:
    """bad_signature: with a secret set, the signature must be the HMAC of the payload
    as received. Without a secret, any signature is ignored."""
    if secret is None:
        return
    if signature is None:
        raise Refusal("bad_signature", "the payload is not signed, but must be", record_id)
    if not _HEX_SHA256.fullmatch(signature):
        raise Refusal(
            "bad_signature", "the signature must be 64 hex digits (HMAC-SHA256)", record_id
        )
    expected = sign(payload, secret).encode("ascii")
    if not hmac.compare_digest(expected, signature.lower().encode("ascii")):
        raise Refusal("bad_signature", "the signature does not match the payload", record_id)


def _check_age(
    issued_at: datetime, now: datetime, max_age: timedelta, record_id: str | None
) -> None:
    """stale: older than max_age, or further ahead of our clock than MAX_CLOCK_AHEAD."""
    age = now - issued_at
    if age > max_age:
        raise Refusal(
            "stale",
            f"issued_at {issued_at.isoformat()} is {_span(age)} old; "
            f"at most {format_duration(max_age)} is accepted",
            record_id,
        )
    if -age > MAX_CLOCK_AHEAD:
        raise Refusal(
            "stale",
            f"issued_at {issued_at.isoformat()} is {_span(-age)} in the future; "
            f"at most {format_duration(MAX_CLOCK_AHEAD)} is accepted (check the sender's clock)",
            record_id,
        )


# --- details that are safe to log and publish --------------------------------------------


def _span(value: timedelta) -> str:
    """A positive time span, readable even when it is years: 20m5s, 3d4h."""
    if value.days < 2:
        return format_duration(value)
    rest = value - timedelta(days=value.days)
    return f"{value.days}d" + (format_duration(rest) if rest >= timedelta(seconds=1) else "")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(text: str) -> str:
    """A value for a detail: escaped (repr), and shortened when long."""
    if len(text) <= _SHOWN_CHARS:
        return repr(text)
    return f"{text[:_SHOWN_CHARS]!r}… ({len(text)} characters)"


def _field_name(part: str | int) -> str:
    if isinstance(part, int) or _PLAIN_NAME.fullmatch(part):
        return str(part)
    return _quote(part)


def _join(messages: list[str]) -> str:
    shown = [_cut(message, _MESSAGE_CHARS) for message in messages[:_MESSAGES_SHOWN]]
    if len(messages) > _MESSAGES_SHOWN:
        shown.append(f"and {len(messages) - _MESSAGES_SHOWN} more")
    return "; ".join(shown)
