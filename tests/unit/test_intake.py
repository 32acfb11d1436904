"""Tests for broadcaster.intake: every error code, the contract's check order, and fuzzing.

The dispatch system and attackers both send to the intake: whatever arrives, the result
is a valid Trigger or a Refusal with one of the contract's error codes, never a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from broadcaster.intake import (
    MAX_PAYLOAD_BYTES,
    Refusal,
    canonical_bytes,
    parse_retraction,
    parse_trigger,
    resolve,
    sign,
)
from broadcaster.models import REASON_MAX_LENGTH, ErrorCode, RetractRequest, Trigger
from broadcaster.playbooks import Playbook

SECRET = "geheimnis-für-tests"
NOW = datetime(2026, 11, 23, 9, 20, tzinfo=UTC)
MAX_AGE = timedelta(minutes=15)
ERROR_CODES = frozenset(get_args(ErrorCode))
# What parse_trigger and resolve may refuse with (duplicate and template_not_approved
# are decided later, by the receiver).
INTAKE_CODES = frozenset(
    {
        "invalid_json",
        "invalid_trigger",
        "bad_signature",
        "stale",
        "unknown_scenario",
        "unknown_stage",
        "invalid_params",
    }
)

PLAYBOOK = Playbook.model_validate(
    {
        "id": "major_fire",
        "name": {"de": "Großbrand", "en": "Major fire"},
        "languages": ["de", "en"],
        "params": {
            "location": {"type": "string", "required": True, "max_length": 60},
            "smoke_direction": {"type": "string", "max_length": 30, "default": ""},
            "radius_m": {"type": "integer", "min": 100, "max": 5000},
            "wind_kmh": {"type": "number", "min": 0, "max": 300},
        },
        "cap": {
            "category": "Fire",
            "urgency": "Immediate",
            "severity": "Severe",
            "certainty": "Observed",
        },
        "stages": {
            "warning": {"msg_type": "Alert"},
            "update": {"msg_type": "Update"},
            "all_clear": {"msg_type": "Update", "severity": "Minor"},
        },
    }
)
PLAYBOOKS = {"major_fire": PLAYBOOK}


def trigger_payload(**changes: Any) -> dict[str, Any]:
    """The contract's example trigger, unsigned, issued 5 minutes before NOW."""
    payload: dict[str, Any] = {
        "id": "FW-DUS-2026-000123",
        "scenario": "major_fire",
        "stage": "warning",
        "incident": "E-2026-4711",
        "mode": "live",
        "issued_at": "2026-11-23T10:15:00+01:00",
        "params": {"location": "Flingern-Nord, Ackerstraße", "smoke_direction": "Nordost"},
    }
    payload.update(changes)
    return payload


def retraction_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "alert_id": "FW-DUS-2026-000123",
        "issued_at": "2026-11-23T10:18:00+01:00",
        "reason": "Fehlalarm: Rauchmelder defekt, kein Brand.",
    }
    payload.update(changes)
    return payload


def signed(payload: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    return {**payload, "signature": sign(payload, secret)}


def encode(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def parse(raw: bytes | str, secret: str | None = SECRET, now: datetime = NOW) -> Trigger:
    return parse_trigger(raw, secret=secret, max_age=MAX_AGE, now=now)


def refused(raw: bytes | str, secret: str | None = SECRET, now: datetime = NOW) -> Refusal:
    with pytest.raises(Refusal) as info:
        parse(raw, secret=secret, now=now)
    return info.value


def handle(raw: bytes | str, secret: str | None = SECRET) -> tuple[Trigger, str, dict[str, Any]]:
    """What the receiver does, without the store: parse, then resolve."""
    trigger = parse(raw, secret=secret)
    _, stage, params = resolve(trigger, PLAYBOOKS)
    return trigger, stage, params


def handle_refused(raw: bytes | str, secret: str | None = SECRET) -> Refusal:
    with pytest.raises(Refusal) as info:
        handle(raw, secret=secret)
    return info.value


def contract_signature(payload: dict[str, Any], secret: str) -> str:
    """The contract's Python one-liner, written out independently of intake.sign."""
    p = {k: v for k, v in payload.items() if k != "signature"}
    return hmac.new(
        secret.encode(),
        json.dumps(p, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
        hashlib.sha256,
    ).hexdigest()


# --- valid triggers and signatures -------------------------------------------------------


def test_a_valid_signed_trigger_parses() -> None:
    payload = signed(trigger_payload())
    trigger = parse(encode(payload))
    assert trigger.id == "FW-DUS-2026-000123"
    assert trigger.scenario == "major_fire"
    assert trigger.stage == "warning"
    assert trigger.incident == "E-2026-4711"
    assert trigger.mode == "live"
    assert trigger.issued_at == datetime(2026, 11, 23, 9, 15, tzinfo=UTC)
    assert trigger.issued_at.utcoffset() == timedelta(hours=1)
    assert trigger.params == payload["params"]
    assert trigger.signature == payload["signature"]


def test_a_str_payload_parses_like_bytes() -> None:
    raw = encode(signed(trigger_payload()))
    assert parse(raw.decode("utf-8")) == parse(raw)


def test_an_umlaut_is_signed_as_utf8_and_verifies() -> None:
    payload = trigger_payload(params={"location": "Ackerstraße, Höhe Nr. 5"})
    body = canonical_bytes(payload)
    assert "Ackerstraße".encode() in body
    assert b"\\u00df" not in body
    # Sent with \u escapes it is the same JSON object, so the same signature holds.
    message = signed(payload)
    for raw in (encode(message), json.dumps(message, ensure_ascii=True).encode()):
        assert parse(raw).params["location"] == "Ackerstraße, Höhe Nr. 5"
    # A sender that signs the escaped form signs other bytes: refused.
    escaped = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    wrong = hmac.new(SECRET.encode(), escaped, hashlib.sha256).hexdigest()
    assert refused(encode({**payload, "signature": wrong})).error == "bad_signature"


def test_canonical_bytes_leave_out_the_signature_sort_keys_and_are_compact() -> None:
    payload = {"b": 1, "a": {"d": [1, 2], "c": "ß"}, "signature": "ff"}
    assert canonical_bytes(payload) == '{"a":{"c":"ß","d":[1,2]},"b":1}'.encode()
    assert canonical_bytes(payload) == canonical_bytes({"a": payload["a"], "b": 1})


def test_the_contracts_one_liner_gives_the_same_hex_as_sign() -> None:
    payload = signed(trigger_payload())
    assert contract_signature(payload, SECRET) == sign(payload, SECRET)
    assert payload["signature"] == sign(trigger_payload(), SECRET)  # signature left out


def test_sign_matches_a_fixed_vector() -> None:
    # printf '%s' '{"id":"X-1","mode":"drill","params":{"ort":"Ackerstraße"}}' \
    #   | openssl dgst -sha256 -hmac geheim
    payload = {"params": {"ort": "Ackerstraße"}, "mode": "drill", "id": "X-1"}
    assert sign(payload, "geheim") == (
        "674759686f73beaaac68247bcf6fd2d8bcf4fcd0fb9b900b573f101bfffe97e1"
    )


def test_an_upper_case_signature_is_accepted() -> None:
    payload = trigger_payload()
    upper = sign(payload, SECRET).upper()
    assert upper != sign(payload, SECRET)
    assert parse(encode({**payload, "signature": upper})).id == "FW-DUS-2026-000123"


def test_without_a_secret_any_signature_is_ignored() -> None:
    assert parse(encode(trigger_payload()), secret=None).id == "FW-DUS-2026-000123"
    garbage = trigger_payload(signature="not even hex")
    assert parse(encode(garbage), secret=None).signature == "not even hex"


def test_defaults_stage_incident_params_are_optional() -> None:
    payload = trigger_payload()
    for key in ("stage", "incident", "params"):
        del payload[key]
    trigger = parse(encode(signed(payload)))
    assert (trigger.stage, trigger.incident, trigger.params) == (None, None, {})


def test_a_byte_order_mark_is_ignored() -> None:
    raw = b"\xef\xbb\xbf" + encode(signed(trigger_payload()))
    assert parse(raw).id == "FW-DUS-2026-000123"


def test_a_payload_of_exactly_the_maximum_size_is_accepted() -> None:
    raw = encode(signed(trigger_payload()))
    padded = raw + b" " * (MAX_PAYLOAD_BYTES - len(raw))
    assert len(padded) == MAX_PAYLOAD_BYTES
    assert parse(padded).id == "FW-DUS-2026-000123"
    over = refused(padded + b" ")
    assert over.error == "invalid_json"
    assert f"{MAX_PAYLOAD_BYTES + 1} bytes" in over.detail


# --- invalid_json ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "empty"),
        (b"  \n ", "empty"),
        (b'{"id":}', "line 1 column 7: Expecting value"),
        (b'{"id": "A"', "line 1 column 11"),
        (b'\n\n  {"a" 1}', "line 3 column 8: Expecting ':' delimiter"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"location": "Ackerstra\xdfe"}', "not UTF-8"),  # Latin-1, not UTF-8
        (b"[1, 2]", "got an array"),
        (b'"major_fire"', "got a string"),
        (b"42", "got a number"),
        (b"true", "got true/false"),
        (b"null", "got null"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": -Infinity}', "-Infinity"),
        (b'{"a": 1e400}', "out of range"),
        (b'{"a": -1e400}', "out of range"),
        (b'{"a": ' + b"9" * 400 + b"}", "out of range"),
        (b'{"a": ' + b"9" * 5000 + b"}", "out of range"),
        (b'{"id": "A", "id": "B"}', "duplicate key 'id'"),
        (b'{"params": {"location": "A", "location": "B"}}', "duplicate key 'location'"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper than 32"),
        (b"[" * 5000, "nested"),
        (b"[" * 100_000, "more than the 65536 allowed"),
        (b'{"a": "line\nbreak"}', "Invalid control character"),
        (b"{} {}", "Extra data"),
    ],
)
def test_invalid_json(raw: bytes, detail: str) -> None:
    refusal = refused(raw)
    assert refusal.error == "invalid_json"
    assert detail in refusal.detail
    assert refusal.trigger_id is None


def test_a_too_large_payload_says_so_without_parsing() -> None:
    raw = encode(signed(trigger_payload(params={"location": "x" * MAX_PAYLOAD_BYTES})))
    refusal = refused(raw)
    assert refusal.error == "invalid_json"
    assert f"{len(raw)} bytes" in refusal.detail
    assert str(MAX_PAYLOAD_BYTES) in refusal.detail
    # As text the size is counted in UTF-8 bytes, not characters.
    text = '{"a": "' + "ß" * (MAX_PAYLOAD_BYTES // 2) + '"}'
    assert len(text) < MAX_PAYLOAD_BYTES < len(text.encode())
    assert refused(text).error == "invalid_json"


def test_a_lone_surrogate_in_a_str_payload_is_refused() -> None:
    assert "lone surrogate" in refused('{"id": "A\ud800"}').detail


def test_nesting_at_the_limit_is_fine() -> None:
    deep: list[Any] = []
    for _ in range(29):
        deep = [deep]
    payload = signed(trigger_payload(params={"x": deep}))  # object, params, 30 lists: 32 levels
    assert parse(encode(payload)).params["x"] == deep


def test_invalid_json_names_a_readable_id_when_the_object_was_read() -> None:
    deep: list[Any] = []
    for _ in range(30):
        deep = [deep]
    raw = encode(trigger_payload(params={"x": deep}))  # object, params, 31 lists: 33 levels
    refusal = refused(raw)
    assert refusal.error == "invalid_json"
    assert refusal.trigger_id == "FW-DUS-2026-000123"


# --- invalid_trigger ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"mode": "test"}, "mode: Input should be 'live' or 'drill'"),
        ({"mode": None}, "mode: Input should be 'live' or 'drill'"),
        ({"id": "FW 123"}, "id: String should match pattern"),
        ({"id": "x" * 65}, "id: String should match pattern"),
        ({"id": 123}, "id: Input should be a valid string"),
        ({"incident": "E/1"}, "incident: String should match pattern"),
        ({"scenario": ""}, "scenario: String should have at least 1 character"),
        ({"stage": "s" * 65}, "stage: String should have at most 64 characters"),
        ({"params": ["location"]}, "params: Input should be a valid dictionary"),
        ({"signature": 12}, "signature: Input should be a valid string"),
        ({"issued_at": "2026-11-23T09:15:00"}, "issued_at: must be an ISO 8601"),
        ({"issued_at": "2026-11-23"}, "issued_at: must be an ISO 8601"),
        ({"issued_at": 1795426500}, "issued_at: must be an ISO 8601"),
        ({"issued_at": "1795426500"}, "issued_at: must be an ISO 8601"),
        ({"issued_at": "2026-11-23T10:15:00+24:00"}, "issued_at: Input should be a valid"),
        ({"issued_at": "2026-02-30T10:15:00+01:00"}, "issued_at: Input should be a valid"),
        ({"priority": "high"}, "priority: unknown field"),
    ],
)
def test_invalid_trigger_names_the_field(changes: dict[str, Any], detail: str) -> None:
    payload = {**signed(trigger_payload(**changes)), **changes}
    refusal = refused(encode(payload))
    assert refusal.error == "invalid_trigger"
    assert detail in refusal.detail


@pytest.mark.parametrize("field", ["id", "scenario", "mode", "issued_at"])
def test_a_required_field_missing_is_invalid_trigger(field: str) -> None:
    payload = trigger_payload()
    del payload[field]
    refusal = refused(encode(signed(payload)))
    assert refusal.error == "invalid_trigger"
    assert refusal.detail == f"{field}: Field required"


def test_invalid_trigger_names_every_wrong_field() -> None:
    payload = trigger_payload(mode="Live", issued_at="yesterday", incident="E 1")
    del payload["scenario"]
    refusal = refused(encode(signed(payload)))
    assert refusal.error == "invalid_trigger"
    for field in ("mode:", "issued_at:", "incident:", "scenario: Field required"):
        assert field in refusal.detail
    assert refusal.trigger_id == "FW-DUS-2026-000123"


def test_invalid_trigger_does_not_echo_huge_values() -> None:
    huge = "A" * 5000
    payload = trigger_payload(mode=huge, scenario=huge, stage=huge, issued_at=huge)
    payload[huge] = "extra"
    payload["evil\nkey"] = huge
    refusal = refused(encode(payload))
    assert refusal.error == "invalid_trigger"
    assert "A" * 100 not in refusal.detail
    assert "\n" not in refusal.detail
    assert "5000 characters" in refusal.detail  # the huge key, shortened
    assert "'evil\\nkey': unknown field" in refusal.detail
    assert len(refusal.detail) < 2000


@pytest.mark.parametrize(
    ("id_value", "expected"),
    [
        ("FW-DUS-2026-000123", "FW-DUS-2026-000123"),
        ("FW-1\n", None),  # $ in Python would match before the newline
        ("x" * 65, None),
        ("<script>", None),
        ("Flingern\u2028forged", None),
        (123, None),
        (None, None),
        (["FW-1"], None),
    ],
)
def test_trigger_id_in_a_refusal_only_when_it_is_an_id(id_value: Any, expected: Any) -> None:
    refusal = refused(encode(trigger_payload(id=id_value, mode="nope")))
    assert refusal.error == "invalid_trigger"
    assert refusal.trigger_id == expected


# --- bad_signature -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "detail"),
    [
        (None, "not signed"),
        ("", "64 hex digits"),
        ("zz" * 32, "64 hex digits"),
        ("ab" * 31, "64 hex digits"),
        ("ab" * 33, "64 hex digits"),
        ("ä" * 64, "64 hex digits"),  # non-ASCII must not reach compare_digest
        ("０" * 64, "64 hex digits"),  # full-width digits are not hex
        ("ab" * 32, "does not match"),
    ],
)
def test_bad_signature(signature: str | None, detail: str) -> None:
    payload = trigger_payload()
    if signature is not None:
        payload["signature"] = signature
    refusal = refused(encode(payload))
    assert refusal.error == "bad_signature"
    assert detail in refusal.detail
    assert refusal.trigger_id == "FW-DUS-2026-000123"


def test_a_signature_with_another_secret_is_bad() -> None:
    refusal = refused(encode(signed(trigger_payload(), secret="the-wrong-secret")))
    assert refusal.error == "bad_signature"


def test_a_payload_changed_after_signing_is_bad() -> None:
    message = signed(trigger_payload())
    message["params"] = {**message["params"], "location": "Rathaus"}
    assert refused(encode(message)).error == "bad_signature"
    message = signed(trigger_payload())
    message["mode"] = "drill"
    assert refused(encode(message)).error == "bad_signature"


def test_a_signature_over_other_serialisation_is_bad() -> None:
    payload = trigger_payload()
    spaced = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    wrong = hmac.new(SECRET.encode(), spaced, hashlib.sha256).hexdigest()
    assert refused(encode({**payload, "signature": wrong})).error == "bad_signature"


# --- stale -------------------------------------------------------------------------------


def test_an_old_trigger_is_stale_and_the_detail_gives_its_age() -> None:
    refusal = refused(encode(signed(trigger_payload(issued_at="2026-11-23T08:59:55Z"))))
    assert refusal.error == "stale"
    assert "20m5s old" in refusal.detail
    assert "15m" in refusal.detail
    assert refusal.trigger_id == "FW-DUS-2026-000123"


def test_a_trigger_from_the_future_is_stale() -> None:
    refusal = refused(encode(signed(trigger_payload(issued_at="2026-11-23T10:23:10+01:00"))))
    assert refusal.error == "stale"
    assert "3m10s in the future" in refusal.detail


def test_a_trigger_years_old_is_stale_with_a_readable_age() -> None:
    refusal = refused(encode(signed(trigger_payload(issued_at="0001-01-01T00:00:00+23:59"))))
    assert refusal.error == "stale"
    assert re.search(r" is \d{6}d\w* old", refusal.detail)
    refusal = refused(encode(signed(trigger_payload(issued_at="9999-12-31T23:59:59-23:59"))))
    assert refusal.error == "stale"


@pytest.mark.parametrize(
    ("issued_at", "accepted"),
    [
        ("2026-11-23T09:05:00Z", True),  # exactly max_age old
        ("2026-11-23T09:04:59Z", False),
        ("2026-11-23T09:04:59.999999Z", False),
        ("2026-11-23T09:22:00Z", True),  # exactly 2 minutes ahead
        ("2026-11-23T10:22:00+01:00", True),
        ("2026-11-23T09:22:01Z", False),
        ("2026-11-23T03:23:00-05:59", True),  # 09:22 UTC
        ("2026-11-23T03:23:01-05:59", False),
    ],
)
def test_stale_boundaries(issued_at: str, accepted: bool) -> None:
    raw = encode(signed(trigger_payload(issued_at=issued_at)))
    if accepted:
        assert parse(raw).id == "FW-DUS-2026-000123"
    else:
        assert refused(raw).error == "stale"


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse(encode(signed(trigger_payload())), now=datetime(2026, 11, 23, 9, 20))


# --- the contract's check order ----------------------------------------------------------


def test_order_invalid_json_before_everything() -> None:
    raw = encode(trigger_payload(mode="x", issued_at="2020-01-01T00:00:00Z"))[:-1]
    assert handle_refused(raw).error == "invalid_json"


def test_order_schema_before_signature() -> None:
    payload = trigger_payload(mode="maybe", signature="ab" * 32)
    assert handle_refused(encode(payload)).error == "invalid_trigger"
    unsigned = trigger_payload()
    del unsigned["mode"]
    assert handle_refused(encode(unsigned)).error == "invalid_trigger"


def test_order_signature_before_stale() -> None:
    payload = trigger_payload(issued_at="2020-01-01T00:00:00Z", signature="ab" * 32)
    assert handle_refused(encode(payload)).error == "bad_signature"
    assert handle_refused(encode(trigger_payload(issued_at="2020-01-01T00:00:00Z"))).error == (
        "bad_signature"
    )


def test_order_stale_before_resolve() -> None:
    payload = trigger_payload(
        issued_at="2020-01-01T00:00:00Z", scenario="alien_invasion", stage="nope"
    )
    assert handle_refused(encode(signed(payload))).error == "stale"


def test_order_unknown_scenario_before_unknown_stage_before_params() -> None:
    bad_params = {"radius_m": "far"}
    payload = trigger_payload(scenario="flood", stage="nope", params=bad_params)
    assert handle_refused(encode(signed(payload))).error == "unknown_scenario"
    payload = trigger_payload(stage="nope", params=bad_params)
    assert handle_refused(encode(signed(payload))).error == "unknown_stage"
    payload = trigger_payload(params=bad_params)
    assert handle_refused(encode(signed(payload))).error == "invalid_params"


# --- resolve -----------------------------------------------------------------------------


def test_resolve_returns_playbook_stage_and_params_with_defaults() -> None:
    trigger = parse(encode(signed(trigger_payload(params={"location": "Ackerstraße"}))))
    playbook, stage, params = resolve(trigger, PLAYBOOKS)
    assert playbook is PLAYBOOK
    assert stage == "warning"
    assert params == {
        "location": "Ackerstraße",
        "smoke_direction": "",
        "radius_m": None,
        "wind_kmh": None,
    }


def test_resolve_converts_params() -> None:
    given = {"location": "Ackerstraße", "radius_m": "500", "wind_kmh": 12}
    trigger = parse(encode(signed(trigger_payload(params=given))))
    _, _, params = resolve(trigger, PLAYBOOKS)
    assert params["radius_m"] == 500
    assert params["wind_kmh"] == 12.0


def test_resolve_defaults_to_the_playbooks_first_stage() -> None:
    payload = trigger_payload()
    del payload["stage"]
    trigger, stage, _ = handle(encode(signed(payload)))
    assert trigger.stage is None
    assert stage == "warning"


def test_resolve_takes_a_later_stage() -> None:
    _, stage, _ = handle(encode(signed(trigger_payload(stage="all_clear"))))
    assert stage == "all_clear"


def test_resolve_unknown_scenario() -> None:
    refusal = handle_refused(encode(signed(trigger_payload(scenario="bomb_defusal"))))
    assert refusal.error == "unknown_scenario"
    assert "'bomb_defusal'" in refusal.detail
    assert "major_fire" in refusal.detail  # the known ones, to find a typo
    assert refusal.trigger_id == "FW-DUS-2026-000123"


def test_resolve_unknown_scenario_with_no_playbooks() -> None:
    trigger = parse(encode(signed(trigger_payload())))
    with pytest.raises(Refusal) as info:
        resolve(trigger, {})
    assert info.value.error == "unknown_scenario"


def test_resolve_unknown_stage() -> None:
    refusal = handle_refused(encode(signed(trigger_payload(stage="Warning"))))
    assert refusal.error == "unknown_stage"
    assert "'Warning'" in refusal.detail
    assert "warning, update, all_clear" in refusal.detail


def test_resolve_invalid_params_names_each_param() -> None:
    given = {"radius_m": 50, "smoke_direction": "Nord\nForged line", "colour": "red"}
    refusal = handle_refused(encode(signed(trigger_payload(params=given))))
    assert refusal.error == "invalid_params"
    messages = refusal.detail.split("; ")
    assert len(messages) == 4
    assert any("'radius_m'" in m and "at least 100" in m for m in messages)
    assert any("'location' is required" in m for m in messages)
    assert any("'smoke_direction'" in m and "control characters" in m for m in messages)
    assert any("unknown param 'colour'" in m for m in messages)


def test_resolve_refuses_a_bidi_override_in_a_param_by_name_and_code_point() -> None:
    given = {"location": "Ackerstraße 12\u202e"}
    refusal = handle_refused(encode(signed(trigger_payload(params=given))))
    assert refusal.error == "invalid_params"
    assert refusal.detail == (
        "param 'location' contains U+202E RIGHT-TO-LEFT OVERRIDE at position 15, "
        "remove it (invisible or control characters are not allowed in public text)"
    )


def test_resolve_invalid_params_does_not_echo_huge_values() -> None:
    # The param's value and an unknown param's name are echoed by playbooks; shortened here.
    given = {"location": "L", "radius_m": "9" * 20_000, "z" * 20_000: 1}
    trigger = parse(encode(signed(trigger_payload(params=given))))
    with pytest.raises(Refusal) as info:
        resolve(trigger, PLAYBOOKS)
    assert info.value.error == "invalid_params"
    assert "'radius_m'" in info.value.detail
    assert "9" * 300 not in info.value.detail
    assert "z" * 300 not in info.value.detail


def test_resolve_lists_at_most_ten_param_problems() -> None:
    given = {f"p{i}": i for i in range(50)} | {"location": "L"}
    refusal = handle_refused(encode(signed(trigger_payload(params=given))))
    assert refusal.error == "invalid_params"
    assert refusal.detail.endswith("and 40 more")


def test_resolve_survives_a_huge_number_in_a_trigger_built_elsewhere() -> None:
    # playbooks converts number params with float(), which overflows for such an int.
    trigger = Trigger.model_validate(
        {**trigger_payload(), "params": {"location": "L", "wind_kmh": 10**400}}
    )
    with pytest.raises(Refusal) as info:
        resolve(trigger, PLAYBOOKS)
    assert info.value.error == "invalid_params"


# --- retraction --------------------------------------------------------------------------


def parse_retract(raw: bytes | str, secret: str | None = SECRET) -> RetractRequest:
    return parse_retraction(raw, secret=secret, max_age=MAX_AGE, now=NOW)


def retract_refused(raw: bytes | str, secret: str | None = SECRET) -> Refusal:
    with pytest.raises(Refusal) as info:
        parse_retract(raw, secret=secret)
    return info.value


def test_a_valid_retraction_parses() -> None:
    request = parse_retract(encode(signed(retraction_payload())))
    assert request.alert_id == "FW-DUS-2026-000123"
    assert request.reason == "Fehlalarm: Rauchmelder defekt, kein Brand."
    assert request.issued_at == datetime(2026, 11, 23, 9, 18, tzinfo=UTC)


def test_a_reason_of_the_maximum_length_is_accepted() -> None:
    reason = "ß" * REASON_MAX_LENGTH
    assert parse_retract(encode(signed(retraction_payload(reason=reason)))).reason == reason


def test_a_too_long_reason_is_invalid() -> None:
    reason = "x" * (REASON_MAX_LENGTH + 1)
    refusal = retract_refused(encode(signed(retraction_payload(reason=reason))))
    assert refusal.error == "invalid_trigger"
    assert f"reason: String should have at most {REASON_MAX_LENGTH} characters" in refusal.detail
    assert refusal.trigger_id == "FW-DUS-2026-000123"


@pytest.mark.parametrize(
    ("reason", "detail"),
    [
        ("", "reason: String should have at least 1 character"),
        ("   ", "reason: must not be blank"),
        ("Fehlalarm\nJetzt evakuieren!", "reason: contains U+000A LINE FEED at position 10"),
        ("Fehlalarm\u2028Jetzt", "reason: contains U+2028 LINE SEPARATOR at position 10"),
        ("Fehl\u202eralarm", "reason: contains U+202E RIGHT-TO-LEFT OVERRIDE at position 5"),
        ("Fehlalarm\u200b", "reason: contains U+200B ZERO WIDTH SPACE at position 10"),
        ("Fehlalarm\x85", "reason: contains U+0085 NEXT LINE at position 10"),
        ("\ufeffFehlalarm", "reason: contains U+FEFF ZERO WIDTH NO-BREAK SPACE at position 1"),
        (None, "reason: Input should be a valid string"),
    ],
)
def test_a_bad_reason_is_invalid(reason: str | None, detail: str) -> None:
    refusal = retract_refused(encode(signed(retraction_payload(reason=reason))))
    assert refusal.error == "invalid_trigger"
    assert detail in refusal.detail


def test_a_retraction_with_a_trigger_field_is_invalid() -> None:
    refusal = retract_refused(encode(signed(retraction_payload(id="FW-1"))))
    assert refusal.error == "invalid_trigger"
    assert "id: unknown field" in refusal.detail


def test_a_retraction_with_a_bad_signature_is_refused() -> None:
    message = signed(retraction_payload())
    message["reason"] = "Doch kein Fehlalarm"
    refusal = retract_refused(encode(message))
    assert refusal.error == "bad_signature"
    assert refusal.trigger_id == "FW-DUS-2026-000123"
    unsigned = retraction_payload()
    assert retract_refused(encode(unsigned)).error == "bad_signature"
    assert parse_retract(encode(unsigned), secret=None).alert_id == "FW-DUS-2026-000123"


def test_a_stale_retraction_is_refused() -> None:
    payload = signed(retraction_payload(issued_at="2026-11-23T08:00:00Z"))
    assert retract_refused(encode(payload)).error == "stale"


def test_a_retraction_checks_json_first() -> None:
    refusal = retract_refused(b'{"alert_id": "A", "alert_id": "B"}')
    assert refusal.error == "invalid_json"


# --- Refusal -----------------------------------------------------------------------------


def test_refusal_public_is_the_errors_json() -> None:
    refusal = Refusal("stale", "too old", "FW-1")
    received = datetime(2026, 11, 23, 10, 15, 30, tzinfo=timezone(timedelta(hours=1)))
    assert refusal.public(received) == {
        "trigger_id": "FW-1",
        "error": "stale",
        "detail": "too old",
        "received_at": "2026-11-23T10:15:30+01:00",
    }
    assert json.loads(json.dumps(refusal.public(received)))["error"] == "stale"
    assert str(refusal) == "stale: too old"


def test_refusal_never_carries_garbage_as_trigger_id() -> None:
    assert Refusal("invalid_json", "x", "a b\n").trigger_id is None
    assert Refusal("invalid_json", "x").public(NOW)["trigger_id"] is None


def test_refusal_caps_its_detail_and_pickles() -> None:
    refusal = Refusal("template_not_approved", "y" * 10_000, "FW-1")
    assert len(refusal.detail) <= 2000
    copy = pickle.loads(pickle.dumps(refusal))
    assert (copy.error, copy.detail, copy.trigger_id) == (
        refusal.error,
        refusal.detail,
        refusal.trigger_id,
    )


# --- fuzzing -----------------------------------------------------------------------------


def checked_refusal(refusal: Refusal) -> Refusal:
    """A refusal as the contract has them: a known code, a short publishable detail."""
    assert refusal.error in ERROR_CODES
    assert refusal.error in INTAKE_CODES
    assert refusal.detail
    assert refusal.trigger_id is None or len(refusal.trigger_id) <= 64
    assert len(refusal.detail) <= 2000
    json.dumps(refusal.public(NOW))  # publishable
    return refusal


def outcome(raw: bytes | str, secret: str | None = SECRET) -> Trigger | Refusal:
    """parse_trigger + resolve; anything but a Trigger or a contract Refusal fails the test."""
    try:
        trigger, stage, params = handle(raw, secret=secret)
    except Refusal as refusal:
        return checked_refusal(refusal)
    assert isinstance(trigger, Trigger)
    assert stage in PLAYBOOK.stages
    assert set(params) == set(PLAYBOOK.params)
    return trigger


FUZZ = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities become NaN/Infinity, which must be refused
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@FUZZ
@given(st.binary(max_size=400))
@example(b"")
@example(b"\xef\xbb\xbf")
@example(b'{"id": "A"}')
@example(b"[" * 5000)
def test_fuzz_random_bytes(raw: bytes) -> None:
    result = outcome(raw)
    assert isinstance(result, Refusal)  # no random bytes are a signed trigger


@FUZZ
@given(json_values, st.booleans())
def test_fuzz_random_json_values(value: Any, ascii_only: bool) -> None:
    result = outcome(json.dumps(value, ensure_ascii=ascii_only).encode())
    assert isinstance(result, Refusal)
    if not isinstance(value, dict):
        assert result.error == "invalid_json"


# JSON values the contract can sign (json.dumps refuses NaN; a double's range).
signable_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def contract_signed(payload: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    """Signed with the contract's one-liner, which also signs NaN (as the bare word NaN)."""
    return {**payload, "signature": contract_signature(payload, secret)}


# Trigger-shaped objects: each field mostly plausible, sometimes anything, so that every
# check of the order is reached (schema, signature, age, scenario, stage, params, accepted).
small_json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


param_values = st.one_of(
    st.sampled_from(["Ackerstraße", "Nordost", "500", 500, 99, 12.5, "12,5", True, None, ""]),
    st.text(max_size=70),
    small_json_values,
)
param_dicts = st.one_of(
    st.fixed_dictionaries(
        {"location": st.sampled_from(["Ackerstraße", "Flingern-Nord"]) | st.text(max_size=70)},
        optional={"radius_m": param_values, "wind_kmh": param_values},
    ),
    st.dictionaries(
        st.sampled_from(["location", "smoke_direction", "radius_m"]) | st.text(),
        param_values,
        max_size=4,
    ),
)
PLAUSIBLE: dict[str, list[Any]] = {
    "id": ["FW-DUS-2026-000123", "a.b:c-D_9"],
    "scenario": ["major_fire", "flood"],
    "mode": ["live", "drill"],
    "issued_at": [
        "2026-11-23T10:15:00+01:00",
        "2026-11-23T09:19:59.5Z",
        "2026-11-23T09:00:00Z",  # stale
        "2026-11-23T09:30:00+00:00",  # from the future
    ],
    "stage": ["warning", "all_clear", "Warning", None],
    "incident": ["E-2026-4711", None],
}
REQUIRED = ("id", "scenario", "mode", "issued_at")


@st.composite
def trigger_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """Each field mostly plausible, now and then missing or anything at all, so that
    every check in the order is reached: schema, signature, age, scenario, stage, params."""
    payload: dict[str, Any] = {}
    for key, good in PLAUSIBLE.items():
        roll = draw(st.integers(0, 9))
        if roll == 0 or (roll <= 4 and key not in REQUIRED):
            continue  # missing
        payload[key] = draw(small_json_values if roll == 1 else st.sampled_from(good))
    if draw(st.integers(0, 9)) > 0:
        payload["params"] = draw(param_dicts)
    if draw(st.integers(0, 9)) == 0:
        payload[draw(st.text())] = draw(small_json_values)
    return payload


@FUZZ
@given(trigger_shaped(), st.sampled_from([SECRET, None]), st.sampled_from(["no", "yes", "wrong"]))
def test_fuzz_trigger_shaped_objects(
    payload: dict[str, Any], secret: str | None, sign_it: str
) -> None:
    if sign_it == "yes":
        payload = contract_signed(payload)
    elif sign_it == "wrong":
        payload = contract_signed(payload, secret="not-the-secret")
    result = outcome(encode(payload), secret=secret)
    if isinstance(result, Trigger) and secret is not None:
        assert sign_it == "yes"
        assert contract_signature(payload, SECRET) == payload["signature"]
    if secret is not None and sign_it != "yes":
        assert isinstance(result, Refusal)
        assert result.error in ("invalid_json", "invalid_trigger", "bad_signature")


HEX = "0123456789abcdef"
MUTATIONS = [
    "drop_key",
    "retype_value",
    "flip_signature",
    "change_issued_at",
    "add_key",
    "change_value",
    "unicode_params",
    "unicode_params_resigned",
]


def original_trigger() -> dict[str, Any]:
    return signed(trigger_payload(params={"location": "Ackerstraße", "radius_m": 500}))


@st.composite
def mutated_triggers(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid signed trigger, then one mutation; returns it and the mutation's name."""
    payload = original_trigger()
    kind = draw(st.sampled_from(MUTATIONS))
    if kind == "drop_key":
        del payload[draw(st.sampled_from(sorted(payload)))]
    elif kind == "retype_value":
        key = draw(st.sampled_from(sorted(payload)))
        old_type = type(payload[key])
        payload[key] = draw(json_values.filter(lambda v: type(v) is not old_type))
    elif kind == "flip_signature":
        signature = payload["signature"]
        i = draw(st.integers(0, len(signature) - 1))
        other_hex = st.sampled_from(HEX.replace(signature[i], ""))
        # Any character but a lone surrogate, which no JSON sender can encode.
        not_hex = st.characters(exclude_characters=HEX + HEX.upper(), exclude_categories=["Cs"])
        payload["signature"] = signature[:i] + draw(other_hex | not_hex) + signature[i + 1 :]
    elif kind == "change_issued_at":
        when = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
        offset = timezone(timedelta(minutes=draw(st.integers(-(24 * 60 - 1), 24 * 60 - 1))))
        text = st.sampled_from(
            [
                when.replace(tzinfo=offset).isoformat(),
                when.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
                when.isoformat(),  # no offset
                str(draw(st.integers(0, 2**40))),  # a Unix timestamp
            ]
        )
        payload["issued_at"] = draw(text | st.text())
    elif kind == "add_key":
        payload[draw(st.text().filter(lambda k: k not in payload))] = draw(json_values)
    elif kind == "change_value":
        key = draw(st.sampled_from(["id", "scenario", "stage", "incident", "mode"]))
        payload[key] = draw(st.text(max_size=70))
    elif kind == "unicode_params":  # left with the old signature
        names = st.sampled_from(["location", "smoke_direction", "radius_m"]) | st.text()
        payload["params"] = draw(st.dictionaries(names, st.text() | json_values, max_size=4))
    else:  # any unicode in params, signed anew
        params: dict[str, Any] = {"location": draw(st.text(max_size=60))}
        if draw(st.booleans()):
            params["smoke_direction"] = draw(st.text(max_size=40))
        if draw(st.booleans()):
            names = st.sampled_from(["radius_m", "wind_kmh"]) | st.text()
            params |= draw(st.dictionaries(names, signable_values, max_size=2))
        payload["params"] = params
        payload = signed({k: v for k, v in payload.items() if k != "signature"})
    return payload, kind


@FUZZ
@given(mutated_triggers())
@example((original_trigger(), "none"))
def test_fuzz_mutated_signed_trigger(case: tuple[dict[str, Any], str]) -> None:
    payload, kind = case
    original = original_trigger()
    result = outcome(encode(payload))
    # Compared as the contract serialises it (which also takes NaN).
    body_changed = contract_signature(payload, "k") != contract_signature(original, "k")
    signature = payload.get("signature")
    signature_ok = isinstance(signature, str) and hmac.compare_digest(
        contract_signature(payload, SECRET).encode(), signature.lower().encode()
    )
    if isinstance(result, Trigger):
        # Accepted with a secret set: the signature matches the payload as sent.
        assert signature_ok
        assert kind == "unicode_params_resigned" or not body_changed
    if kind == "unicode_params_resigned":
        # Signed with the secret over any unicode: it verifies, params decide.
        assert isinstance(result, Trigger) or result.error == "invalid_params"
    elif body_changed:
        assert isinstance(result, Refusal)
    if kind == "flip_signature":
        assert isinstance(result, Refusal)
        assert result.error == "bad_signature"
    # Without a secret the same input is handled too, never with bad_signature.
    unsigned = outcome(encode(payload), secret=None)
    assert not (isinstance(unsigned, Refusal) and unsigned.error == "bad_signature")


def test_the_mutations_all_run() -> None:
    # A guard for the strategy itself: every mutation can be drawn and changes the payload.
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(mutated_triggers())
    def collect(case: tuple[dict[str, Any], str]) -> None:
        seen.add(case[1])

    collect()
    assert seen == set(MUTATIONS)
