"""The warning page through the real daemon, without a browser: a live trigger whose
template was changed after its approval is refused and never reaches the page, and a live
alert under `broadcaster run --dry-run` (sent, but to no one) is on no public view."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import aiohttp
import yaml

from tests.integration.harness import publish, running_daemon, signed_trigger, write_deployment

A = "{http://www.w3.org/2005/Atom}"


async def test_a_live_alert_from_an_unapproved_template_never_reaches_the_page(
    tmp_path, mosquitto, watcher
):
    config = write_deployment(tmp_path, mqtt_url=mosquitto.url, channels={"log": {"type": "log"}})
    template = tmp_path / "templates" / "major_fire" / "warning" / "long.de.j2"
    template.write_text(template.read_text(encoding="utf-8") + "Nicht freigegeben.\n", "utf-8")
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with running_daemon(config), aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-UNAPPROVED"))
        refusal = await watcher.error_for("FW-UNAPPROVED", "template_not_approved")
        assert "long.de.j2" in refusal["detail"]
        async with http.get(f"{root}/warnings", headers={"Accept": "text/html"}) as r:
            html = await r.text()
        async with http.get(f"{root}/warnings/feed.atom") as r:
            feed = ET.fromstring(await r.read())
        async with http.get(f"{root}/warnings/banner") as r:
            banner = await r.text()
    assert 'data-testid="no-warnings"' in html
    assert 'data-testid="entry"' not in html
    assert "Nicht freigegeben" not in html
    assert feed.findall(f"{A}entry") == []
    assert 'data-testid="banner-none"' in banner


async def test_a_dry_run_daemons_live_alert_is_on_no_public_view_its_drill_is_on_its_own(
    tmp_path, mosquitto, watcher
):
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"log": {"type": "log"}, "cap": {"type": "cap_feed"}},
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with running_daemon(config, dry_run=True), aiohttp.ClientSession() as http:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-DRY", incident="E-DRY"))
        drill = signed_trigger("UEB-DRY", mode="drill", incident="E-UEB")
        await publish(mosquitto.url, "bc/trigger", drill)
        live = await watcher.alert_in("FW-DRY", "sent")  # dispatch calls a dry run sent
        await watcher.alert_in("UEB-DRY", "sent")
        async with http.get(f"{root}/warnings", headers={"Accept": "text/html"}) as r:
            html = await r.text()
        async with http.get(f"{root}/warnings.json") as r:
            data = await r.json()
        async with http.get(f"{root}/warnings/feed.atom") as r:
            feed = ET.fromstring(await r.read())
        async with http.get(f"{root}/warnings/banner") as r:
            banner = await r.text()
        async with http.get(f"{root}/warnings.json?drill=1") as r:
            drills = await r.json()
    assert {d["state"] for d in live["deliveries"].values()} == {"dry_run"}
    assert len(live["deliveries"]) == 2
    assert 'data-testid="no-warnings"' in html
    assert 'data-testid="entry"' not in html
    assert data["warnings"] == []
    assert feed.findall(f"{A}entry") == []
    assert 'data-testid="banner-none"' in banner
    assert [w["id"] for w in drills["warnings"]] == ["UEB-DRY"]
