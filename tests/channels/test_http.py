"""Shared HTTP answer classification (HttpAdapter.check and its hooks): no sockets."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, cast

import aiohttp
import pytest

from broadcaster.channels.base import PermanentError, TransientError
from broadcaster.channels.http import (
    TRANSIENT_STATUSES,
    Answer,
    HttpAdapter,
    excerpt,
    retry_after_seconds,
)

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


class Plain(HttpAdapter[None]):
    service = "svc"


class Provider(HttpAdapter[None]):
    """A provider that adjusts every part of the table."""

    service = "svc"
    transient_statuses: ClassVar[frozenset[int]] = TRANSIENT_STATUSES | {409}
    permanent_statuses: ClassVar[frozenset[int]] = frozenset({501})
    busy_statuses: ClassVar[frozenset[int] | None] = frozenset({409, 429})
    redirect_fix = "fix base_url"

    def wait(self, answer: Answer) -> float | None:
        reset = answer.headers.get("X-Reset")
        return float(reset) if reset else super().wait(answer)

    def note(self, answer: Answer, message: str) -> str:
        return " (posted twice?)" if "duplicate" in message else ""

    def secrets(self) -> tuple[tuple[str, str], ...]:
        return (("tok3n", "<token>"),)


NO_SESSION = cast(aiohttp.ClientSession, None)  # check() makes no request


def check(
    status: int,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    adapter: type[HttpAdapter[Any]] = Plain,
) -> None:
    adapter("c1", None, NO_SESSION).check(Answer(status, headers or {}, body))


def test_success_passes() -> None:
    check(201)


def test_error_message_has_status_and_body_start() -> None:
    with pytest.raises(PermanentError) as caught:
        check(400, b'{"error":\n  "bad' + b"x" * 500 + b'"}')

    assert caught.value.message.startswith('svc c1: HTTP 400: {"error": "badxxx')
    assert len(caught.value.message) < 230


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_the_default_table_retries_these(status: int) -> None:
    with pytest.raises(TransientError) as caught:
        check(status, headers={"Retry-After": "7"})
    assert caught.value.retry_after == 7.0
    assert caught.value.busy  # it said how long to wait


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 409, 422])
def test_the_default_table_gives_up_on_these(status: int) -> None:
    with pytest.raises(PermanentError):
        check(status)


def test_a_redirect_names_where_it_went_and_what_to_fix() -> None:
    with pytest.raises(PermanentError, match=r"redirect to https://new\.example/; fix the co"):
        check(308, headers={"Location": "https://new.example/"})
    with pytest.raises(PermanentError, match=r"; fix base_url\)$"):
        check(308, headers={"Location": "https://new.example/"}, adapter=Provider)


def test_the_transient_set_is_per_adapter() -> None:
    with pytest.raises(PermanentError):
        check(409)
    with pytest.raises(TransientError) as caught:
        check(409, adapter=Provider)
    assert caught.value.busy  # in busy_statuses, though it did not say how long
    with pytest.raises(PermanentError):
        check(501, adapter=Provider)  # a 5xx the provider means for good
    with pytest.raises(TransientError) as transient:
        check(503, headers={"Retry-After": "3"}, adapter=Provider)
    assert transient.value.retry_after == 3.0
    assert not transient.value.busy  # not in busy_statuses


def test_the_wait_hook_reads_the_provider_s_headers() -> None:
    with pytest.raises(TransientError) as caught:
        check(429, headers={"X-Reset": "42", "Retry-After": "1"}, adapter=Provider)
    assert caught.value.retry_after == 42.0


def test_notes_and_secrets() -> None:
    with pytest.raises(PermanentError) as caught:
        check(403, b"duplicate of tok3n", adapter=Provider)
    assert caught.value.message == "svc c1: HTTP 403: duplicate of <token> (posted twice?)"
    with pytest.raises(TransientError) as transient:
        check(503, b"tok3n is busy", headers={"Retry-After": "2"}, adapter=Provider)
    assert "tok3n" not in transient.value.message
    assert transient.value.retry_after == 2.0


def test_excerpt_survives_broken_utf8() -> None:
    assert excerpt(b"caf\xc3") == "caf\ufffd"
