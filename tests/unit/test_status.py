"""What `broadcaster status` says about one alert: counts, who, mode, times."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.text import Text

from broadcaster.models import Alert, Delivery
from broadcaster.status import deliveries_summary, local_time, mode_badge, who

AT = datetime(2026, 11, 23, 9, 15, tzinfo=UTC)


def alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "id": "FW-1",
        "incident": "FW-1",
        "scenario": "major_fire",
        "stage": "warning",
        "mode": "live",
        "issued_at": AT,
    }
    return Alert(**{**fields, **changes})


def delivery(state: Any, delivered: bool) -> Delivery:
    return Delivery(
        alert_id="FW-1",
        channel_id=f"c{state}{delivered}",
        channel_type="webhook",
        language="de",
        variant="short",
        title="t",
        text="x",
        state=state,
        delivered_at=AT if delivered else None,
    )


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_deliveries_that_went_out_count_after_a_retraction():
    retracted = alert(state="retracted", retracted_by="mqtt")
    went_out = [delivery("retracted", True) for _ in range(3)]
    assert deliveries_summary(retracted, went_out) == "3/3 sent, retracted"
    never = [delivery("retracted", False), delivery("delivered", True), delivery("failed", False)]
    assert deliveries_summary(retracted, never) == "1/3 sent, 1 failed, retracted"
    drill = alert(mode="drill", state="sent")
    assert deliveries_summary(drill, [delivery("dry_run", False)] * 2) == "2/2 dry run (not sent)"
    assert deliveries_summary(alert(), []) == "no deliveries"


def test_a_correction_is_shown_as_the_retraction_of_its_alert():
    correction = alert(
        id="FW-1:retraction", retracts="FW-1", confirmed_by="mqtt", retracted_by="A. Schmidt"
    )
    assert who(correction) == "correction of FW-1, retracted by A. Schmidt"
    original = alert(state="retracted", confirmed_by="B. Yilmaz", retracted_by="A. Schmidt")
    assert who(original) == "confirmed by B. Yilmaz, retracted by A. Schmidt"


def test_live_is_as_loud_as_drill():
    live, drill = Text.from_markup(mode_badge("live")), Text.from_markup(mode_badge("drill"))
    assert (live.plain, drill.plain) == ("LIVE", "DRILL")
    for badge in (live, drill):
        [span] = badge.spans
        assert "bold" in str(span.style)
        assert (span.start, span.end) == (0, len(badge.plain))


def test_times_carry_their_zone(berlin):
    assert local_time(AT) == "2026-11-23 10:15:00 CET"
    assert local_time(datetime(2026, 7, 1, 8, 0, tzinfo=UTC), with_date=False) == "10:00:00 CEST"
