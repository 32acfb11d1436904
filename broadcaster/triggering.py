"""Building and publishing a trigger, as the fire brigade's dispatch system does
(`broadcaster trigger`; also handy for their integration tests and for drills)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from broadcaster.config import MqttSettings
from broadcaster.intake import sign
from broadcaster.mqtt import make_client


def build_trigger(
    scenario: str,
    mode: str,
    params: dict[str, Any],
    *,
    alert_id: str | None = None,
    stage: str | None = None,
    incident: str | None = None,
    issued_at: datetime | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    """A trigger payload of contract section 6, signed when a secret is given."""
    payload: dict[str, Any] = {
        "id": alert_id or f"CLI-{uuid.uuid4().hex[:16]}",
        "scenario": scenario,
        "mode": mode,
        "issued_at": (issued_at or datetime.now().astimezone()).isoformat(timespec="seconds"),
        "params": params,
    }
    if stage is not None:
        payload["stage"] = stage
    if incident is not None:
        payload["incident"] = incident
    if secret is not None:
        payload["signature"] = sign(payload, secret)
    return payload


async def publish_once(settings: MqttSettings, topic: str, payload: str) -> None:
    """Publish with QoS 1 and return once the broker has acknowledged it."""
    async with make_client(settings) as client:
        await client.publish(topic, payload, qos=1)
