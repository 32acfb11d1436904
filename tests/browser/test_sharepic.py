"""The share-pic card as a browser fetches it from the daemon's /media route (as Meta's
crawler does): a JPEG that decodes at 1080×1350, for a live warning and for a drill.
The cards are kept as docs/images/sharepic-live.jpg and sharepic-drill.jpg, and a phone
screenshot of the live one as docs/images/sharepic-phone.png (docs/channels.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, FloatRect

from broadcaster.sharepic import HEIGHT, WIDTH
from tests.browser.conftest import PHONE
from tests.browser.images import IMAGES
from tests.fakes.instagram import IG_USER_ID, TOKEN, FakeInstagram
from tests.integration.harness import publish, running_daemon, signed_trigger, write_deployment


@pytest.fixture
async def fake() -> AsyncIterator[FakeInstagram]:
    async with FakeInstagram.start() as server:
        yield server


async def test_the_card_decodes_at_its_size_in_chromium(
    tmp_path, mosquitto, watcher, fake: FakeInstagram, phone: BrowserContext
) -> None:
    channel = {
        "type": "instagram",
        "base_url": f"{fake.base_url}/v21.0",
        "ig_user_id": IG_USER_ID,
        "access_token": TOKEN,
        "drill": "send",
        "language": "de",
    }
    config = write_deployment(
        tmp_path,
        mqtt_url=mosquitto.url,
        channels={"insta": channel},
        extra={"cap": {"sender_name": "Feuerwehr Düsseldorf"}},
    )
    IMAGES.mkdir(parents=True, exist_ok=True)
    async with running_daemon(config) as daemon:
        for alert_id, mode in (("FW-CARD-LIVE", "live"), ("FW-CARD-DRILL", "drill")):
            await publish(mosquitto.url, "bc/trigger", signed_trigger(alert_id, mode=mode))
            await watcher.alert_in(alert_id, "sent")
        base = daemon.settings.http.public_url
        page = await phone.new_page()
        for alert_id, name in (("FW-CARD-LIVE", "live"), ("FW-CARD-DRILL", "drill")):
            response = await page.goto(f"{base}/media/{alert_id}/insta.jpg")
            assert response is not None
            assert response.status == 200
            assert response.headers["content-type"] == "image/jpeg"
            size = await page.evaluate(
                "() => { const i = document.images[0];"
                " return i.complete ? [i.naturalWidth, i.naturalHeight] : null; }"
            )
            assert size == [WIDTH, HEIGHT]
            body = await response.body()
            assert body[:3] == b"\xff\xd8\xff"
            (IMAGES / f"sharepic-{name}.jpg").write_bytes(body)
            if name == "live":
                # The card as a phone shows it: Chromium scales it to the screen.
                width = PHONE["width"]
                clip: FloatRect = {"x": 0, "y": 0, "width": width, "height": width * HEIGHT / WIDTH}
                await page.screenshot(path=IMAGES / "sharepic-phone.png", clip=clip)
        await page.close()
    # What the browser got is what Meta's crawler (the fake) fetched.
    assert [f.refused for f in fake.fetches] == [None, None]
