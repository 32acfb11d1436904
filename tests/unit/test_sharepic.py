"""The share-pic card: a JPEG of Instagram's portrait size, the same bytes every time,
an exercise banner that cannot be missed on a drill, and texts that always fit."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import pytest
from PIL import Image, ImageDraw

from broadcaster import sharepic
from broadcaster.models import Alert, Texts
from broadcaster.sharepic import (
    BANNER_HEIGHT,
    DRILL_YELLOW,
    HEIGHT,
    MAX_BYTES,
    WIDTH,
    Card,
    card_for,
    card_url,
    face,
    render_card,
    sender_name,
    wrap,
)

BERLIN = timezone(timedelta(hours=1))
ISSUED = datetime(2026, 11, 23, 10, 15, tzinfo=BERLIN)


def alert(mode: Literal["live", "drill"] = "live", **changes: Any) -> Alert:
    prefix = "ÜBUNG: " if mode == "drill" else ""
    texts = {
        "de": Texts(
            title=f"{prefix}Großbrand in Flingern-Nord",
            short=f"{prefix}Starker Rauch. Fenster und Türen schließen.",
            long="lang",
        ),
        "en": Texts(title="Major fire", short="Close windows.", long="long"),
    }
    return Alert(
        id="FW-1",
        incident="E-1",
        scenario="major_fire",
        stage="warning",
        mode=mode,
        issued_at=ISSUED,
        texts=texts,
        **changes,
    )


def decoded(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def rgb(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    pixel = image.convert("RGB").getpixel(xy)
    assert isinstance(pixel, tuple)
    return pixel


def yellow(pixel: tuple[int, ...]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(pixel, DRILL_YELLOW, strict=True))


def test_a_card_is_a_jpeg_of_1080_by_1350_under_8_mib() -> None:
    data = render_card(card_for(alert(), "de", sender="Stadt Düsseldorf", drill_prefix="ÜBUNG"))
    image = decoded(data)
    assert data.startswith(b"\xff\xd8\xff")
    assert image.format == "JPEG"
    assert image.size == (WIDTH, HEIGHT) == (1080, 1350)
    assert image.mode == "RGB"
    assert len(data) < MAX_BYTES
    assert "exif" not in image.info  # nothing that changes from one render to the next


def test_the_same_alert_gives_the_same_bytes() -> None:
    card = card_for(alert(), "de", sender="Stadt Düsseldorf", drill_prefix="ÜBUNG")
    again = card_for(alert(), "de", sender="Stadt Düsseldorf", drill_prefix="ÜBUNG")
    assert card == again
    assert render_card(card) == render_card(again)
    other = card_for(alert(), "en", sender="Stadt Düsseldorf", drill_prefix="EXERCISE")
    assert render_card(other) != render_card(card)


def test_a_card_shows_the_language_s_title_short_text_time_and_city() -> None:
    card = card_for(alert(), "de", sender="Stadt Düsseldorf", drill_prefix="ÜBUNG")
    assert card.title == "Großbrand in Flingern-Nord"
    assert card.text == "Starker Rauch. Fenster und Türen schließen."
    assert card.when == "23.11.2026, 10:15 Uhr"  # the trigger's own zone, as the texts say
    assert card.sender == "Stadt Düsseldorf"
    assert card.drill_banner is None
    english = card_for(alert(), "en", sender="x", drill_prefix="EXERCISE")
    assert (english.title, english.when) == ("Major fire", "23.11.2026, 10:15")
    # A language the alert lacks: its first one.
    assert card_for(alert(), "fr", sender="x", drill_prefix="EXERCISE").language == "de"


def test_a_drill_card_carries_the_exercise_banner_top_and_bottom() -> None:
    drill = card_for(alert("drill"), "de", sender="Stadt Düsseldorf", drill_prefix="ÜBUNG")
    live = card_for(alert(), "de", sender="Stadt Düsseldorf", drill_prefix="ÜBUNG")
    assert drill.drill_banner == "ÜBUNG"
    assert drill.title == "Großbrand in Flingern-Nord"  # the banner says ÜBUNG, once
    drill_image = decoded(render_card(drill)).convert("RGB")
    live_image = decoded(render_card(live)).convert("RGB")
    # Sample the banners' plain middle beside the word, and the same places on the live card.
    for y in (12, BANNER_HEIGHT - 12, HEIGHT - BANNER_HEIGHT + 12, HEIGHT - 12):
        for x in (420, 540, 720):
            assert yellow(rgb(drill_image, (x, y))), (x, y)
            assert not yellow(rgb(live_image, (x, y))), (x, y)
    # The banner holds dark ink (the word and the stripes), not yellow alone.
    band = drill_image.crop((0, 0, WIDTH, BANNER_HEIGHT)).convert("L")
    dark = sum(1 for v in band.get_flattened_data() if isinstance(v, int) and v < 60)
    assert dark > WIDTH * BANNER_HEIGHT // 10


def test_a_correction_is_marked_and_not_red() -> None:
    correction = card_for(
        alert(retracts="FW-0"), "de", sender="Stadt Düsseldorf", drill_prefix="ÜBUNG"
    )
    assert correction.correction == "KORREKTUR"
    band = rgb(decoded(render_card(correction)), (WIDTH - 20, 20))
    assert band[2] > band[0]  # blue, not the warning's red


def test_long_texts_are_wrapped_and_cut_with_an_ellipsis() -> None:
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    f = face(50, bold=False)
    text = " ".join(["Rauchentwicklung"] * 80)
    lines = wrap(draw, text, f, 900, 5)
    assert len(lines) == 5
    assert lines[-1].endswith("…")
    assert all(draw.textlength(line, font=f.font) <= 900 for line in lines)
    short = wrap(draw, "Fenster schließen.", f, 900, 5)
    assert short == ["Fenster schließen."]
    # A word wider than the line is broken, not left to overflow.
    long_word = wrap(draw, "Donaudampfschifffahrtsgesellschaftskapitän" * 3, f, 400, 3)
    assert all(draw.textlength(line, font=f.font) <= 400 for line in long_word)
    assert long_word[-1].endswith("…")
    # The card with a very long text still renders at its size.
    huge = Card(title="T " * 200, text=text, when="now", sender="S" * 300, language="de")
    assert decoded(render_card(huge)).size == (WIDTH, HEIGHT)


def test_the_city_name_and_the_card_url() -> None:
    assert sender_name("Feuerwehr Düsseldorf", "https://warn.example") == "Feuerwehr Düsseldorf"
    assert sender_name(None, "https://warnung.duesseldorf.de/") == "warnung.duesseldorf.de"
    assert sender_name("  ", "https://warn.example") == "warn.example"
    assert (
        card_url("https://warn.example/", "FW-1:retraction", "insta")
        == "https://warn.example/media/FW-1:retraction/insta.jpg"
    )


def test_without_dejavu_the_card_is_drawn_with_pillow_s_own_font(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sharepic, "DEJAVU", tmp_path)  # no fonts-dejavu-core here
    sharepic.face.cache_clear()
    try:
        assert sharepic.font_source() == "Pillow's embedded font"
        drill = card_for(alert("drill"), "de", sender="Stadt Düsseldorf", drill_prefix="ÜBUNG")
        image = decoded(render_card(drill))
        assert image.size == (WIDTH, HEIGHT)
        assert yellow(rgb(image, (540, 12)))
        # It has no umlauts: they are spelled out rather than drawn as empty boxes.
        assert sharepic.spelled("ÜBUNG: Großbrand – café") == "UEBUNG: Grossbrand - cafe"
        assert sharepic.spelled("Łódź") == "?odz"
    finally:
        sharepic.face.cache_clear()  # the next test draws with DejaVu again
