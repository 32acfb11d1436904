"""Records for store tests: an alert of the major_fire scenario and its deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from broadcaster.models import Alert, Delivery, Texts

T0 = datetime(2026, 11, 23, 9, 15, 0, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def make_alert(alert_id: str = "FW-DUS-2026-000123", **fields: Any) -> Alert:
    data: dict[str, Any] = {
        "id": alert_id,
        "incident": alert_id,
        "scenario": "major_fire",
        "stage": "warning",
        "mode": "live",
        "issued_at": datetime(2026, 11, 23, 10, 15, tzinfo=CET),
        "created_at": T0,
        "updated_at": T0,
        "params": {"location": "Flingern-Nord, Ackerstraße", "radius_m": 500},
        "texts": {
            "de": Texts(
                title="Großbrand in Flingern-Nord",
                short="Großbrand: Fenster und Türen schließen.",
                long="Großbrand in Flingern-Nord, Ackerstraße. Fenster und Türen schließen.",
                instruction="Fenster und Türen schließen.",
            )
        },
    }
    data.update(fields)
    return Alert.model_validate(data)


def make_delivery(alert_id: str, channel_id: str, **fields: Any) -> Delivery:
    data: dict[str, Any] = {
        "alert_id": alert_id,
        "channel_id": channel_id,
        "channel_type": "mastodon",
        "language": "de",
        "variant": "short",
        "title": "Großbrand in Flingern-Nord",
        "text": f"Großbrand: Fenster und Türen schließen. ({channel_id})",
        "updated_at": T0,
    }
    data.update(fields)
    return Delivery.model_validate(data)


def make_deliveries(alert_id: str, *channels: str) -> list[Delivery]:
    return [make_delivery(alert_id, channel) for channel in channels]
