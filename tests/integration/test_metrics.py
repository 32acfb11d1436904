"""The metrics of docs/metrics.md after a run that makes each of them move: a trigger
released by the duty officer's link, a webhook that fails once (a retry) under a rate
limit, an Instagram post (its quota), a refused trigger and one left waiting. Every
documented metric is there with its documented labels, and nothing undocumented is."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.instagram import IG_USER_ID, TOKEN, FakeInstagram
from tests.integration.harness import (
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)
from tests.servers import REPO

ROW = re.compile(r"^\| `(broadcaster_\w+)` \|\s*(\w+)\s*\|([^|]*)\|", re.MULTILINE)


def documented() -> dict[str, tuple[str, set[str]]]:
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    return {
        name: (kind, set(re.findall(r"`(\w+)`", labels)))
        for name, kind, labels in ROW.findall(text)
    }


def family_name(name: str, kind: str) -> str:
    """The exposition's family name: a counter's is without `_total`."""
    return name.removesuffix("_total") if kind == "counter" else name


@pytest.fixture
async def instagram() -> AsyncIterator[FakeInstagram]:
    async with FakeInstagram.start() as server:
        yield server


async def test_every_documented_metric_is_exported_with_its_labels(
    tmp_path, mosquitto, watcher: Watcher, hooks, instagram
):
    public, officer, _ = hooks
    public.script(503)  # one transient failure: a retry and its wait
    channels = {
        "web": webhook(public.url, rate_limit="50/s"),
        "insta": {
            "type": "instagram",
            "base_url": f"{instagram.base_url}/v21.0",
            "ig_user_id": IG_USER_ID,
            "access_token": TOKEN,
            "language": "de",
        },
        "officer_hook": webhook(officer.url, audience="internal"),
    }
    extra = {
        "duty_officers": [{"name": "A. Schmidt", "notify": ["officer_hook"]}],
        "confirm": {"undo_window": "0s"},
    }
    confirmation = {"mode": "required", "timeout": "10m", "on_timeout": "abort"}
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels=channels, extra=extra, confirmation=confirmation
    )
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("M-1"))
        await officer.wait_for_requests(1)
        link = officer.posts[0].json["confirm_url"]
        async with http.post(link, data={"action": "release"}) as answer:
            assert answer.status == 200
        await watcher.alert_in("M-1", "sent")
        await publish(
            mosquitto.url, "bc/trigger", {**signed_trigger("M-BAD"), "signature": "0" * 64}
        )
        await watcher.error_for("M-BAD", "bad_signature")
        await publish(mosquitto.url, "bc/trigger", signed_trigger("M-2"))
        await watcher.alert_in("M-2", "awaiting_confirmation")
        async with http.get(f"http://{daemon.settings.http.listen}/metrics") as answer:
            text = await answer.text()

    families = {f.name: f for f in text_string_to_metric_families(text)}
    # prometheus_client's `_created` timestamps come as families of their own.
    ours = {n for n in families if n.startswith("broadcaster_") and not n.endswith("_created")}
    docs = documented()
    assert len(docs) >= 18
    assert ours == {family_name(n, k) for n, (k, _) in docs.items()}, "docs/metrics.md is off"
    for name, (kind, labels) in docs.items():
        family = families[family_name(name, kind)]
        assert family.type == kind, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)

    samples = [s for f in families.values() for s in f.samples]

    def value(name: str, **labels: str) -> float:
        found = [
            s.value
            for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert found, (name, labels)
        return float(found[0])

    assert value("broadcaster_triggers_total", result="accepted") == 2
    assert value("broadcaster_triggers_total", result="bad_signature") == 1
    assert value("broadcaster_alerts", state="awaiting_confirmation") == 1
    assert value("broadcaster_alerts", state="sending") == 0
    assert value("broadcaster_oldest_unfinished_alert_age_seconds") > 0
    assert value("broadcaster_confirmation_wait_seconds_count", mode="live") == 1
    assert value("broadcaster_trigger_to_first_delivery_seconds_count", mode="live") == 1
    assert value("broadcaster_trigger_to_last_delivery_seconds_count", mode="live") == 1
    assert value("broadcaster_retry_wait_seconds_count", channel="web") == 1
    assert value("broadcaster_rate_limit_wait_seconds_count", channel="web") == 2
    assert value("broadcaster_delivery_attempts_total", channel="web", outcome="transient") == 1
    assert value("broadcaster_deliveries_total", channel="insta", state="delivered") == 1
    assert value("broadcaster_provider_quota_remaining", channel="insta") == 49
    assert value("broadcaster_last_trigger_timestamp_seconds", mode="live") > 0
    assert value("broadcaster_store_up") == 1
    assert value("broadcaster_mqtt_up") == 1
