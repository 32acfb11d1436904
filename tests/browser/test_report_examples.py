"""The committed after-action report examples (docs/reports/, made by
tests/integration/test_report_examples.py) in real headless Chromium at a phone's size:
headings, every channel of the run, the exercise marking, no outside resource, no
sideways scrolling, printable. The screenshot is kept as docs/reports/<playbook>.png."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Request, expect

from tests.browser.conftest import PHONE
from tests.servers import REPO

EXAMPLES = REPO / "docs" / "reports"
HEADINGS = [
    "Summary",
    "Who triggered",
    "Who released",
    "What went where",
    "Retractions and corrections",
    "Refused input",
    "Timeline",
]


@pytest.mark.parametrize("playbook", ["major_fire", "bomb_defusal", "severe_storm"])
async def test_report_example_reads_on_a_phone(phone: BrowserContext, playbook: str) -> None:
    html = EXAMPLES / f"{playbook}.html"
    data: dict[str, Any] = json.loads((EXAMPLES / f"{playbook}.json").read_text("utf-8"))
    page = await phone.new_page()
    requests: list[str] = []

    def record(request: Request) -> None:
        requests.append(request.url)

    page.on("request", record)
    await page.goto(html.as_uri())
    assert requests == [html.as_uri()]  # self-contained: nothing else is loaded

    await expect(page.locator("h1")).to_have_text(
        f"After-action report: incident {data['incident']}"
    )
    assert await page.locator("h2").all_inner_texts() == HEADINGS
    assert await page.locator("html").get_attribute("lang") == "en"

    overview = page.get_by_test_id("channel-overview")
    channels = sorted(data["channels"])
    assert len(channels) >= 5
    for cid in channels:
        await expect(overview.locator("td b", has_text=cid)).to_have_count(1)
        cards = page.locator(f'.card[data-channel="{cid}"]')
        await expect(cards).to_have_count(
            len([a for a in data["alerts"] if cid in {d["channel"] for d in a["deliveries"]}])
        )
    stages = page.locator("section.stage")
    await expect(stages).to_have_count(len(data["alerts"]))

    banner = page.get_by_test_id("exercise-banner")
    title = await page.title()
    if data["exercise"]:
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("EXERCISE / ÜBUNG")
        assert title.startswith("EXERCISE / ÜBUNG")
        await expect(page.locator("section.stage .badge.exercise")).to_have_count(
            len(data["alerts"])
        )
        await expect(page.locator(".badge.live")).to_have_count(0)
        # A dry-run delivery is never shown as sent.
        dry = page.locator(".card", has=page.locator("span.notsent", has_text="dry run"))
        await expect(dry).to_have_count(data["summary"]["dry_run"])
        await expect(page.locator(".card span.sent")).to_have_count(data["summary"]["sent"])
    else:
        await expect(banner).to_have_count(0)
        assert "EXERCISE" not in title
        assert "ÜBUNG" not in await page.content()
        await expect(page.locator("section.stage .badge.live")).to_have_count(len(data["alerts"]))

    # Readable at 390 px: wide tables scroll in their own box, the page never sideways.
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    await page.screenshot(path=str(EXAMPLES / f"{playbook}.png"))

    await page.emulate_media(media="print")
    pdf = await page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b"/Type /Page") > 1
    await page.close()
