"""The share-pic card: an alert's texts in one language drawn as a JPEG for Instagram (and
Facebook photo posts, `media: card`), served at `/media/{alert_id}/{channel_id}.jpg`.

1080×1350 pixels (Instagram's 4:5 portrait), large type, high contrast: the city's name
and the time on a coloured band, the title in bold, the short text below it, each
wrapped to the width and cut with an ellipsis when it does not fit. A drill carries a
yellow-and-black exercise banner at the top and bottom (the deployment's drill prefix:
"ÜBUNG", "EXERCISE"), and its texts lose the prefix the banner already shows.

Fonts: DejaVu Sans (Debian's `fonts-dejavu-core`, /usr/share/fonts/truetype/dejavu/)
when it is installed, else Pillow's embedded scalable font (`ImageFont.load_default`,
bold drawn with a stroke). Nothing is downloaded. The embedded font (Aileron) has no
umlauts, ß or other letters beyond ASCII: with it, such letters are spelled out
(Ü -> UE, ß -> ss, é -> e), so a card never shows an empty box. The same card always gives the same
bytes (no timestamp, no EXIF), so a re-render serves what Meta fetched.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from urllib.parse import quote, urlsplit

from PIL import Image, ImageDraw, ImageFont

from broadcaster.models import Alert

WIDTH, HEIGHT = 1080, 1350
MAX_BYTES = 8 * 1024 * 1024  # Instagram refuses larger images (error 2207004)
QUALITY = 90
MARGIN = 72
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")

# Colours: WCAG contrast of text on its background is over 7:1 for each pair.
WHITE = (255, 255, 255)
INK = (17, 17, 17)
WARNING_RED = (176, 0, 32)  # the live band: white on it 7.5:1
CORRECTION_BLUE = (13, 71, 161)  # a correction's band, so it is not taken for a warning
DRILL_YELLOW = (255, 214, 0)  # the exercise banner: black on it 14:1
BANNER_HEIGHT = 190
BAND_HEIGHT = 150

# The card's wording beside the alert's own texts, per language (English otherwise).
WORDS: dict[str, dict[str, str]] = {
    "de": {"time": "{date}, {clock} Uhr", "correction": "KORREKTUR"},
    "en": {"time": "{date}, {clock}", "correction": "CORRECTION"},
}


@dataclass(frozen=True)
class Card:
    """What a card shows; equal cards draw equal bytes."""

    title: str
    text: str
    when: str  # e.g. "23.11.2026, 10:15 Uhr"
    sender: str  # the city's (or brigade's) name
    language: str
    drill_banner: str | None = None  # "ÜBUNG" for a drill, else None
    correction: str | None = None  # "KORREKTUR" on a correction, else None


def card_url(public_url: str, alert_id: str, channel_id: str) -> str:
    """Where the daemon serves an alert's card for one channel (web/media.py)."""
    return f"{public_url.rstrip('/')}/media/{quote(alert_id, safe=':')}/{channel_id}.jpg"


def sender_name(configured: str | None, public_url: str) -> str:
    """The name on the card: `cap.sender_name` (e.g. "Feuerwehr Düsseldorf"), else the
    host of `http.public_url`."""
    if configured and configured.strip():
        return configured.strip()
    return urlsplit(public_url).hostname or public_url


def card_for(alert: Alert, language: str, *, sender: str, drill_prefix: str) -> Card:
    """The card of an alert in one language (its first language if it lacks this one)."""
    texts = alert.texts.get(language) or next(iter(alert.texts.values()))
    lang = language if language in alert.texts else next(iter(alert.texts))
    title, text = texts.title, texts.short
    banner = None
    if alert.mode == "drill":
        banner = drill_prefix
        # The banner says it: the texts' own "ÜBUNG: " is not repeated under it.
        title = title.removeprefix(f"{drill_prefix}: ")
        text = text.removeprefix(f"{drill_prefix}: ")
    words = WORDS.get(lang, WORDS["en"])
    return Card(
        title=title,
        text=text,
        when=local_time(alert.issued_at, lang),
        sender=sender,
        language=lang,
        drill_banner=banner,
        correction=words["correction"] if alert.retracts is not None else None,
    )


def local_time(moment: datetime, language: str) -> str:
    """The time as the texts show it: the trigger's own zone, `dd.mm.yyyy, HH:MM`."""
    words = WORDS.get(language, WORDS["en"])
    return words["time"].format(date=moment.strftime("%d.%m.%Y"), clock=moment.strftime("%H:%M"))


# -- drawing --------------------------------------------------------------------------------

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont | ImageFont.TransposedFont


@dataclass(frozen=True)
class Face:
    font: Font
    stroke: int  # the embedded font has no bold: a stroke thickens it


@cache
def face(size: int, *, bold: bool) -> Face:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = DEJAVU / name
    if path.is_file():
        return Face(ImageFont.truetype(str(path), size), 0)
    return Face(ImageFont.load_default(size=size), max(1, size // 30) if bold else 0)


# How a letter the embedded font lacks is spelled (German first, then without accents).
SPELLED = {"Ä": "AE", "Ö": "OE", "Ü": "UE", "ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"}
SPELLED.update({"„": '"', "“": '"', "”": '"', "‚": "'", "‘": "'", "’": "'", "–": "-"})
SPELLED.update({"—": "-", "…": "...", "€": "EUR", "\u00a0": " "})


def embedded() -> bool:
    """Whether the cards are drawn with Pillow's embedded font (no DejaVu installed)."""
    return not (DEJAVU / "DejaVuSans.ttf").is_file()


@cache
def _missing(char: str) -> bool:
    """Whether the embedded font draws `char` as its "no such glyph" box."""
    font = ImageFont.load_default(size=40)
    box = font.getmask("\uffff")
    mask = font.getmask(char)
    return mask.size == box.size and bytes(mask) == bytes(box)


def spelled(text: str) -> str:
    """`text` in letters the embedded font has."""
    out = []
    for char in text:
        if char.isascii() or not _missing(char):
            out.append(char)
        elif char in SPELLED:
            out.append(SPELLED[char])
        else:
            plain = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            out.append(plain if plain and not any(_missing(c) for c in plain) else "?")
    return "".join(out)


def font_source() -> str:
    """Which font the cards are drawn with, for the docs and the log."""
    return "Pillow's embedded font" if embedded() else "DejaVu Sans"


def _width(draw: ImageDraw.ImageDraw, text: str, f: Face) -> float:
    return draw.textlength(text, font=f.font) + 2 * f.stroke


def wrap(draw: ImageDraw.ImageDraw, text: str, f: Face, width: float, max_lines: int) -> list[str]:
    """`text` in lines of at most `width` pixels, at most `max_lines` of them; a text
    that does not fit ends in an ellipsis. A word wider than a line is broken."""
    words = text.split()
    lines: list[str] = []
    current = ""
    cut = False
    for word in words:
        candidate = f"{current} {word}" if current else word
        if _width(draw, candidate, f) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        while _width(draw, word, f) > width:  # a long compound, a URL
            end = len(word)
            while end > 1 and _width(draw, word[:end], f) > width:
                end -= 1
            lines.append(word[:end])
            word = word[end:]
            if len(lines) >= max_lines:
                break
        current = word
        if len(lines) >= max_lines:
            cut = True
            break
    if current and len(lines) < max_lines:
        lines.append(current)
    elif current:
        cut = True
    if len(lines) > max_lines:
        lines, cut = lines[:max_lines], True
    if cut and lines:
        last = lines[-1]
        while last and _width(draw, last.rstrip() + "…", f) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    return lines


def _line_height(f: Face) -> int:
    size = getattr(f.font, "size", 40)
    return int(size * 1.22) + 2 * f.stroke


def _text(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, f: Face, fill: tuple[int, ...]
) -> None:
    draw.text(xy, text, font=f.font, fill=fill, stroke_width=f.stroke, stroke_fill=fill)


def _centred(
    draw: ImageDraw.ImageDraw, top: int, height: int, text: str, f: Face, fill: tuple[int, ...]
) -> None:
    box = draw.textbbox((0, 0), text, font=f.font, stroke_width=f.stroke)
    x = (WIDTH - (box[2] - box[0])) / 2 - box[0]
    y = top + (height - (box[3] - box[1])) / 2 - box[1]
    _text(draw, (x, y), text, f, fill)


def _banner(draw: ImageDraw.ImageDraw, top: int, word: str) -> None:
    """A yellow band with black diagonal stripes at its ends and the word in the middle."""
    draw.rectangle((0, top, WIDTH, top + BANNER_HEIGHT), fill=DRILL_YELLOW)
    stripe = 46
    for x in range(-BANNER_HEIGHT, WIDTH + BANNER_HEIGHT, 2 * stripe):
        if 150 < x < WIDTH - 150 - BANNER_HEIGHT:
            continue  # the middle stays plain yellow behind the word
        draw.polygon(
            [
                (x, top + BANNER_HEIGHT),
                (x + stripe, top + BANNER_HEIGHT),
                (x + stripe + BANNER_HEIGHT, top),
                (x + BANNER_HEIGHT, top),
            ],
            fill=INK,
        )
    size = 132
    f = face(size, bold=True)
    while size > 40 and _width(draw, word, f) > WIDTH - 2 * 200:
        size -= 8
        f = face(size, bold=True)
    _centred(draw, top, BANNER_HEIGHT, word, f, INK)


def draw_card(card: Card) -> Image.Image:
    if embedded():
        card = replace(
            card,
            title=spelled(card.title),
            text=spelled(card.text),
            when=spelled(card.when),
            sender=spelled(card.sender),
            drill_banner=spelled(card.drill_banner) if card.drill_banner else None,
            correction=spelled(card.correction) if card.correction else None,
        )
    image = Image.new("RGB", (WIDTH, HEIGHT), WHITE)
    draw = ImageDraw.Draw(image)
    top, bottom = 0, HEIGHT
    if card.drill_banner:
        _banner(draw, 0, card.drill_banner)
        _banner(draw, HEIGHT - BANNER_HEIGHT, card.drill_banner)
        top, bottom = BANNER_HEIGHT, HEIGHT - BANNER_HEIGHT
    # The band: who warns, and when.
    colour = CORRECTION_BLUE if card.correction else WARNING_RED
    draw.rectangle((0, top, WIDTH, top + BAND_HEIGHT), fill=colour)
    band_font = face(46, bold=True)
    sender = wrap(draw, card.sender, band_font, WIDTH - 2 * MARGIN, 1)
    _text(draw, (MARGIN, top + 22), sender[0] if sender else "", band_font, WHITE)
    _text(draw, (MARGIN, top + 84), card.when, face(38, bold=False), WHITE)
    y = top + BAND_HEIGHT + 56
    if card.correction:
        mark = face(64, bold=True)
        _text(draw, (MARGIN, y), card.correction, mark, CORRECTION_BLUE)
        y += _line_height(mark) + 16
    usable = WIDTH - 2 * MARGIN
    title_font = face(78, bold=True)
    for line in wrap(draw, card.title, title_font, usable, 4):
        _text(draw, (MARGIN, y), line, title_font, INK)
        y += _line_height(title_font)
    y += 36
    draw.rectangle((MARGIN, y, MARGIN + 160, y + 10), fill=colour)
    y += 46
    text_font = face(50, bold=False)
    step = _line_height(text_font)
    room = max(1, (bottom - 48 - y) // step)
    for line in wrap(draw, card.text, text_font, usable, room):
        _text(draw, (MARGIN, y), line, text_font, INK)
        y += step
    return image


def render_card(card: Card) -> bytes:
    """The card as a baseline JPEG (quality 90, no metadata): the same card, the same
    bytes."""
    out = BytesIO()
    draw_card(card).save(out, "JPEG", quality=QUALITY, optimize=True)
    data = out.getvalue()
    if len(data) > MAX_BYTES:  # a 1080×1350 card is ~150 KB; this would be a bug
        raise ValueError(f"share-pic of {len(data)} bytes is over Instagram's 8 MiB")
    return data
