"""Shared HTTP answer classification: pure functions, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broadcaster.channels.base import PermanentError, TransientError
from broadcaster.channels.http import check_status, excerpt, retry_after_seconds

NOW = datetime(2026, 11, 23, 9, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Mon, 23 Nov 2026 09:16:30 GMT", 90.0),
        ("Monday, 23-Nov-26 09:16:30 GMT", 90.0),  # the obsolete RFC 850 form
        ("Mon, 23 Nov 2026 09:00:00 GMT", 0.0),  # already past
        ("9" * 400, 1e9),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


def test_success_passes() -> None:
    check_status("svc", 201, {}, b"")


def test_error_message_has_status_and_body_start() -> None:
    with pytest.raises(PermanentError) as caught:
        check_status("svc", 400, {}, b'{"error":\n  "bad' + b"x" * 500 + b'"}')

    assert caught.value.message.startswith('svc: HTTP 400: {"error": "badxxx')
    assert len(caught.value.message) < 230


def test_transient_set_is_per_adapter() -> None:
    with pytest.raises(PermanentError):
        check_status("svc", 409, {}, b"")
    with pytest.raises(TransientError):
        check_status("svc", 409, {}, b"", transient=frozenset({409}))


def test_excerpt_survives_broken_utf8() -> None:
    assert excerpt(b"caf\xc3") == "caf\ufffd"
