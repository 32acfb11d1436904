"""A refused live trigger is a human problem: kept, listed, and told to the duty officers
at once; a refused drill is kept and listed but tells nobody."""

from __future__ import annotations

import aiohttp

from tests.integration.harness import (
    API_TOKEN,
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)


async def test_a_refused_live_trigger_reaches_the_officers_and_a_drill_does_not(
    tmp_path, mosquitto, watcher: Watcher, hooks
):
    public, officer_a, officer_b = hooks
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={
            "public": webhook(public.url),
            "officer_a": webhook(officer_a.url, audience="internal"),
            "officer_b": webhook(officer_b.url, audience="internal"),
        },
        extra={
            "duty_officers": [
                {"name": "A. Schmidt", "notify": ["officer_a"]},
                {"name": "B. Yilmaz", "notify": ["officer_b", "officer_a"]},
            ]
        },
    )
    async with running_daemon(config) as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-NOPE", params={}))
        await watcher.error_for("FW-NOPE", "invalid_params")
        await officer_a.wait_for_requests(1)
        await officer_b.wait_for_requests(1)
        drill = signed_trigger("FW-DRILL-NOPE", mode="drill", scenario="tsunami")
        await publish(mosquitto.url, "bc/trigger", drill)
        await watcher.error_for("FW-DRILL-NOPE", "unknown_scenario")
        # One more live refusal after it: once the officers have that, a notice about the
        # drill would have come before.
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-NOPE-2", scenario="x"))
        await officer_a.wait_for_requests(2)
        await officer_b.wait_for_requests(2)
        url = f"http://{daemon.settings.http.listen}/api/refusals"
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        async with aiohttp.ClientSession() as http, http.get(url, headers=auth) as r:
            assert r.status == 200
            listed = await r.json()
    assert [r["trigger_id"] for r in listed] == ["FW-NOPE-2", "FW-DRILL-NOPE", "FW-NOPE"]
    assert listed[1]["mode"] == "drill"
    assert listed[1]["scenario"] == "tsunami"
    assert listed[2]["error"] == "invalid_params"
    assert listed[2]["source"] == "mqtt"
    # Each officer channel told of each live one once (officer_a is listed twice).
    for fake in (officer_a, officer_b):
        assert [p.json["alert_id"] for p in fake.posts] == ["FW-NOPE", "FW-NOPE-2"]
        told = fake.posts[0].json
        assert told["kind"] == "refusal"
        assert told["error"] == "invalid_params"
        assert told["alert_id"] == "FW-NOPE"
        assert told["mode"] == "live"
        assert "location" in told["detail"]
        assert "NICHT gesendet" in told["text"]
    assert public.posts == []
