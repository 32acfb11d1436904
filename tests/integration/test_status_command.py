"""`broadcaster status` as an operator reads it in an 80-column terminal, after a real
alert and its retraction went out."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from broadcaster.intake import sign
from broadcaster.models import utcnow
from tests.integration.harness import (
    SECRET,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

LONG_ID = "FW-2026-11-23-ACKERSTRASSE-12-BRAND-0001"  # 40 characters
TIME_WITH_ZONE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|CEST)")


async def status(config: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broadcaster",
        "status",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "80", "TZ": "Europe/Berlin"},
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_status_of_a_retracted_alert_and_its_correction_at_80_columns(
    tmp_path, mosquitto, watcher, hooks
):
    assert len(LONG_ID) == 40
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={f"hook_{n}": webhook(h.url) for n, h in zip("abc", hooks, strict=True)},
    )
    async with running_daemon(config):
        await publish(mosquitto.url, "bc/trigger", signed_trigger(LONG_ID))
        await watcher.alert_in(LONG_ID, "sent")
        request = {"alert_id": LONG_ID, "issued_at": utcnow().isoformat(), "reason": "Fehlalarm"}
        await publish(mosquitto.url, "bc/retract", {**request, "signature": sign(request, SECRET)})
        await watcher.alert_in(f"{LONG_ID}:retraction", "sent")
        await watcher.wait_for(
            lambda: all(
                d["state"] == "retracted"
                for d in (watcher.alert(LONG_ID) or {}).get("deliveries", {}).values()
            )
        )
    listing = await status(config)
    lines = [line.rstrip() for line in listing.splitlines()]
    # Each id whole on a line of its own: it can be copied into `broadcaster retract`.
    assert LONG_ID in lines, listing
    assert f"{LONG_ID}:retraction" in lines, listing
    original = listing[listing.index(f"{LONG_ID}\n") :]
    correction = listing[listing.index(f"{LONG_ID}:retraction\n") : listing.index(f"{LONG_ID}\n")]
    # Its three deliveries went out, then were retracted: not "0/3 done".
    assert "3/3 sent, retracted" in original
    assert "0/3" not in original
    assert "retracted by mqtt" in original
    assert "reason: Fehlalarm" in original
    assert f"correction of {LONG_ID}, retracted by mqtt" in correction
    assert "confirmed by" not in correction
    assert "LIVE" in original
    assert "LIVE" in correction
    assert TIME_WITH_ZONE.search(original)
    assert TIME_WITH_ZONE.search(correction)

    detail = await status(config, LONG_ID)
    assert LONG_ID in [line.rstrip() for line in detail.splitlines()], detail
    assert "3/3 sent, retracted" in detail
    assert re.search(r"\d\d:\d\d:\d\d (CET|CEST)", detail.split("Deliveries")[1]), detail
    for channel in ("hook_a", "hook_b", "hook_c"):
        assert channel in detail
    detail = await status(config, f"{LONG_ID}:retraction")
    assert f"correction of {LONG_ID}, retracted by mqtt" in detail
    assert "confirmed by" not in detail
