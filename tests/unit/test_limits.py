"""Tests for broadcaster.limits: exact counts for the tricky cases, plus properties."""

from __future__ import annotations

import math
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from broadcaster.channels.kinds import KINDS
from broadcaster.limits import (
    Measurement,
    SmsEncoding,
    bluesky_graphemes,
    is_gsm7,
    mastodon_length,
    measure,
    sms_encoding,
    telegram_length,
    utf8_length,
    x_weighted_length,
)

FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 👩‍👩‍👧‍👦, 7 code points
FLAG_DE = "\U0001f1e9\U0001f1ea"  # 🇩🇪
GRINNING = "\U0001f600"  # 😀
THUMBS_UP_MEDIUM = "\U0001f44d\U0001f3fd"  # 👍🏽
KEYCAP_ONE = "1\ufe0f\u20e3"  # 1️⃣

GERMAN = (
    "Großbrand in Köln-Mülheim: „Halten Sie Fenster und Türen geschlossen.“ – "
    "Schalten Sie Lüftungs- und Klimaanlagen ab. Meiden Sie das Gebiet, "
    "Straßen sind gesperrt. Informieren Sie sich im Lokalradio. "
)


def german_text(length: int) -> str:
    text = (GERMAN * 5)[:length]
    assert len(text) == length
    return text


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


def test_measurement_str_and_fits() -> None:
    assert str(Measurement(212, 280, "weighted characters")) == "212/280 weighted characters"
    assert (
        str(Measurement(2, 3, "SMS segments", "GSM-7, 212 septets"))
        == "2/3 SMS segments (GSM-7, 212 septets)"
    )
    assert str(Measurement(212, None, "characters")) == "212 characters (no limit)"
    assert Measurement(280, 280, "weighted characters").fits
    assert not Measurement(281, 280, "weighted characters").fits
    assert Measurement(10**9, None, "characters").fits


# --------------------------------------------------------------------------------------------
# X
# --------------------------------------------------------------------------------------------


def test_x_url_counts_23_whatever_its_length() -> None:
    short = "https://t.co/x"
    long_url = "https://www.example.org/warnungen/2026/" + "a" * 61
    assert len(long_url) == 100
    assert x_weighted_length(short) == 23
    assert x_weighted_length(long_url) == 23
    assert x_weighted_length(f"Info: {short} jetzt") == 6 + 23 + 6
    assert x_weighted_length(f"Info: {long_url} jetzt") == 6 + 23 + 6


def test_x_url_trailing_punctuation_and_www() -> None:
    # twitter-text conformance (validate.yml): "Hi http://test.co" -> 26
    assert x_weighted_length("Hi http://test.co") == 26
    # the full stop, closing quote and unbalanced parenthesis are not part of the URL
    assert x_weighted_length("Siehe https://example.org/x.") == 6 + 23 + 1
    assert x_weighted_length("„https://example.org/x“.") == 1 + 23 + 2
    assert x_weighted_length("(https://de.wikipedia.org/wiki/A_(B))") == 1 + 23 + 1
    assert x_weighted_length("www.example.org/seite, danke") == 23 + 7
    # a bare domain is not detected (documented limitation): counted per character
    assert x_weighted_length("example.org") == 11


def test_x_emoji_weigh_2() -> None:
    assert x_weighted_length(GRINNING) == 2
    assert x_weighted_length(FAMILY) == 2  # ZWJ sequence: 2 in total, not 4 * 2 + 3
    assert x_weighted_length(FLAG_DE) == 2
    assert x_weighted_length(THUMBS_UP_MEDIUM) == 2
    assert x_weighted_length(KEYCAP_ONE) == 2
    assert x_weighted_length("#\u20e3") == 2  # keycap without VS16
    assert x_weighted_length("\u200d\u20e3") == 3  # no keycap base: ZWJ 1 + U+20E3 2
    # twitter-text conformance (WeightedTweetsWithDiscountedEmojiCounterTest)
    man_woman_girl_boy = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    assert x_weighted_length("H\U0001f431\u263a" + man_woman_girl_boy) == 7
    assert x_weighted_length("\U0001f64b\U0001f3fd\U0001f468\u200d\U0001f3a4") == 4


def test_x_text_presentation_symbols() -> None:
    assert x_weighted_length("©") == 1  # U+00A9 without VS16 is text, in the 1-weight range
    assert x_weighted_length("©\ufe0f") == 2  # emoji presentation: one emoji
    assert x_weighted_length("\u263a\ufe0e") == 4  # VS15: not an emoji, 2 + 2


def test_x_cjk_weighs_2() -> None:
    assert x_weighted_length("火") == 2
    assert x_weighted_length("火事です") == 8


def test_x_german_letters_and_punctuation_weigh_1() -> None:
    assert x_weighted_length("ÄÖÜäöüß") == 7
    assert x_weighted_length("„Achtung“ – jetzt") == 17
    assert x_weighted_length("„“–") == 3
    assert x_weighted_length("…") == 2  # U+2026 is outside the 1-weight ranges


def test_x_280_german_characters_fit_281_do_not() -> None:
    fits = german_text(280)
    assert x_weighted_length(fits) == 280
    assert measure("x", fits).fits
    too_long = german_text(281)
    assert x_weighted_length(too_long) == 281
    assert not measure("x", too_long).fits
    assert str(measure("x", too_long)) == "281/280 weighted characters"


def test_x_nfc_normalization() -> None:
    assert x_weighted_length("e\u0301") == 1  # e + combining acute -> é
    assert x_weighted_length("A\u0301B") == 2  # conformance "'Á' is normalized into 1 char"
    # conformance: U+FB2C (a composition exclusion) normalizes into 3 code points
    assert x_weighted_length("A\ufb2c") == 4


# --------------------------------------------------------------------------------------------
# Mastodon
# --------------------------------------------------------------------------------------------


def test_mastodon_url_counts_23() -> None:
    url = "https://www.example.org/warnungen/" + "a" * 80
    assert mastodon_length(url) == 23
    assert mastodon_length(f"Mehr: {url}") == 6 + 23
    assert mastodon_length("https://t.co") == 23
    assert mastodon_length("https://t.co", url_length=30) == 30


def test_mastodon_www_without_scheme_counts_in_full() -> None:
    # Mastodon extracts URLs with extract_url_without_protocol: false
    assert mastodon_length("www.example.org") == 15


def test_mastodon_mention_counts_as_local_part() -> None:
    assert mastodon_length("@feuerwehr@social.example.de") == len("@feuerwehr")
    assert mastodon_length("Danke @feuerwehr@social.example.de!") == len("Danke @feuerwehr!")
    assert mastodon_length("@feuerwehr") == 10
    assert mastodon_length("info@stadt.example") == 18  # an e-mail address is no mention


def test_mastodon_counts_graphemes() -> None:
    assert mastodon_length(FAMILY) == 1
    assert mastodon_length("Grüße " + FLAG_DE) == 7
    assert mastodon_length("abc", spoiler_text="CW: Brand") == 12


def test_mastodon_limit_override() -> None:
    m = measure("mastodon", "a" * 600, limit=1000)
    assert (m.count, m.limit, m.fits) == (600, 1000, True)
    assert not measure("mastodon", "a" * 600).fits


# --------------------------------------------------------------------------------------------
# Bluesky
# --------------------------------------------------------------------------------------------


def test_bluesky_emoji_is_one_grapheme() -> None:
    assert bluesky_graphemes(FAMILY) == 1
    assert utf8_length(FAMILY) == 25
    assert bluesky_graphemes("e\u0301") == 1
    assert bluesky_graphemes("Grüße " + FLAG_DE) == 7


def test_bluesky_300_graphemes() -> None:
    assert measure("bluesky", "a" * 300) == Measurement(300, 300, "graphemes")
    assert not measure("bluesky", "a" * 301).fits
    # URLs count in full on Bluesky
    assert bluesky_graphemes("https://example.org/" + "a" * 80) == 100


def test_bluesky_switches_to_bytes_over_3000() -> None:
    # 300 family emoji: 300 graphemes (fits), but 7500 UTF-8 bytes (does not)
    m = measure("bluesky", FAMILY * 300)
    assert m == Measurement(7500, 3000, "UTF-8 bytes")
    assert not m.fits
    # exactly 3000 bytes is still measured in graphemes
    assert measure("bluesky", "a" * 3000) == Measurement(3000, 300, "graphemes")
    assert measure("bluesky", "ä" * 1501) == Measurement(3002, 3000, "UTF-8 bytes")


# --------------------------------------------------------------------------------------------
# Telegram
# --------------------------------------------------------------------------------------------


def test_telegram_counts_utf16_units() -> None:
    assert telegram_length(GRINNING) == 2
    assert telegram_length("Ä") == 1
    assert telegram_length(FAMILY) == 11
    assert measure("telegram", "a" * 4096).fits
    assert measure("telegram", "a" * 4095 + GRINNING) == Measurement(4097, 4096, "UTF-16 units")


# --------------------------------------------------------------------------------------------
# SMS
# --------------------------------------------------------------------------------------------


def test_sms_extension_characters_cost_2() -> None:
    assert sms_encoding("€") == SmsEncoding("GSM-7", 2, 1)
    assert sms_encoding("[") == SmsEncoding("GSM-7", 2, 1)
    assert sms_encoding("^{}\\[~]|€\f").units == 20
    assert sms_encoding("Preis: 5 €").units == 11


def test_sms_german_letters_stay_gsm7() -> None:
    text = "Äpfel, Öl, Übung, ärgern, öde, über, Straße"
    assert is_gsm7(text)
    assert sms_encoding(text) == SmsEncoding("GSM-7", len(text), 1)


@pytest.mark.parametrize(
    ("length", "segments"), [(0, 1), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3)]
)
def test_sms_gsm7_segment_boundaries(length: int, segments: int) -> None:
    assert sms_encoding("a" * length) == SmsEncoding("GSM-7", length, segments)


def test_sms_escape_pair_is_not_split() -> None:
    # 160 septets with an ESC pair: still one SMS
    assert sms_encoding("a" * 158 + "€").segments == 1
    # 306 septets: ceil(306 / 153) = 2, but the € at septets 153-154 moves to part 2
    # (part 1 carries 152), so the last "a" needs a third part
    text = "a" * 152 + "€" + "a" * 152
    assert sms_encoding(text) == SmsEncoding("GSM-7", 306, 3)
    # the same length without the boundary problem needs 2
    assert sms_encoding("€" + "a" * 304) == SmsEncoding("GSM-7", 306, 2)


def test_sms_emoji_switches_to_ucs2() -> None:
    assert sms_encoding(GRINNING) == SmsEncoding("UCS-2", 2, 1)
    assert sms_encoding("a" * 68 + GRINNING) == SmsEncoding("UCS-2", 70, 1)
    assert sms_encoding("a" * 69 + GRINNING) == SmsEncoding("UCS-2", 71, 2)
    assert sms_encoding("a" * 132 + GRINNING) == SmsEncoding("UCS-2", 134, 2)
    assert sms_encoding("a" * 133 + GRINNING) == SmsEncoding("UCS-2", 135, 3)


def test_sms_ucs2_70_and_67() -> None:
    assert sms_encoding("ç" * 70) == SmsEncoding("UCS-2", 70, 1)
    assert sms_encoding("ç" * 71) == SmsEncoding("UCS-2", 71, 2)
    assert sms_encoding("ç" * 134) == SmsEncoding("UCS-2", 134, 2)
    assert sms_encoding("ç" * 135) == SmsEncoding("UCS-2", 135, 3)


def test_sms_surrogate_pair_is_not_split() -> None:
    # 134 units: ceil(134 / 67) = 2, but the emoji at units 67-68 moves to part 2
    text = "a" * 66 + GRINNING + "a" * 66
    assert sms_encoding(text) == SmsEncoding("UCS-2", 134, 3)


def test_sms_same_text_plain_versus_one_emoji() -> None:
    plain = "Warnung: Großbrand in Mülheim. Fenster und Türen schließen, Lüftung aus. " * 2
    assert len(plain) == 146
    assert sms_encoding(plain) == SmsEncoding("GSM-7", 146, 1)
    with_emoji = plain + GRINNING  # 148 UTF-16 units: 67 + 67 + 14
    assert sms_encoding(with_emoji) == SmsEncoding("UCS-2", 148, 3)
    m = measure("sms", with_emoji)
    why = "outside GSM-7: \U0001f600 U+1F600 GRINNING FACE at 147"
    assert m == Measurement(3, 3, "SMS segments", f"UCS-2, 148 UTF-16 units; {why}")
    assert str(m) == f"3/3 SMS segments (UCS-2, 148 UTF-16 units; {why})"


def test_the_sms_measure_names_the_characters_that_make_it_ucs2() -> None:
    text = "Schule „Am Park“ gesperrt. " * 5  # 135 characters: 1 SMS in GSM-7, 3 in UCS-2
    m = measure("sms", text)
    assert (m.count, m.fits) == (3, True)
    assert m.detail == (
        "UCS-2, 135 UTF-16 units; outside GSM-7: „ U+201E DOUBLE LOW-9 QUOTATION MARK at 8, "
        "“ U+201C LEFT DOUBLE QUOTATION MARK at 16"
    )
    many = measure("sms", "ŁŚŻĆŃ Łódź").detail  # 7 distinct: the first 3 named
    assert many.endswith("Ż U+017B LATIN CAPITAL LETTER Z WITH DOT ABOVE at 3 and 4 more")
    assert "outside" not in measure("sms", "Straße [Nord] 5 €").detail  # GSM-7, extension too


def test_sms_typographic_quote_switches_to_ucs2() -> None:
    assert not is_gsm7("„Achtung“")
    assert sms_encoding("„Achtung“").encoding == "UCS-2"
    assert sms_encoding('"Achtung"').encoding == "GSM-7"
    for char in "„“”‚‘’–—…\u00a0`ÀÈç\t":
        assert not is_gsm7(char), repr(char)


def test_sms_measure() -> None:
    m = measure("sms", "a" * 200)
    assert m == Measurement(2, 3, "SMS segments", "GSM-7, 200 septets")
    assert str(m) == "2/3 SMS segments (GSM-7, 200 septets)"
    assert not measure("sms", "a" * 200, limit=1).fits
    assert measure("sms", "").count == 1


# --------------------------------------------------------------------------------------------
# measure()
# --------------------------------------------------------------------------------------------


def test_default_limits() -> None:
    # The kinds' own defaults; a kind added later needs no line here.
    expected: dict[str, int | None] = {"mastodon": 500, "bluesky": 300, "x": 280, "sms": 3}
    expected |= {"telegram": 4096, "facebook": 63206}
    expected |= {"email": None, "webhook": None, "cap_feed": None, "log": None}
    assert {t: KINDS[t].length_limit for t in expected} == expected


def test_measure_unlimited_channels() -> None:
    for channel_type in ("email", "webhook", "cap_feed", "log"):
        m = measure(channel_type, "Grüße " + GRINNING)
        assert m == Measurement(7, None, "characters")
        assert m.fits
        assert str(m) == "7 characters (no limit)"
    assert measure("facebook", "a" * 63207) == Measurement(63207, 63206, "characters")


def test_measure_unknown_channel_type() -> None:
    with pytest.raises(ValueError, match="carrier_pigeon"):
        measure("carrier_pigeon", "text")


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

# Characters that exercise the edges: GSM basic and extension characters, non-GSM BMP
# characters, emoji building blocks, combining marks, URL-ish pieces.
_TRICKY_CHARS = (
    "aZ \näßÉ€[^\f„“–ç…火@.)(/:1#©"
    "\U0001f600\U0001f469\u200d\ufe0f\ufe0e\U0001f3fd\U0001f1e9\U0001f1ea\u20e3\u0301"
)
_TRICKY = st.sampled_from([*_TRICKY_CHARS, "https://", "www.", "@x@y.z"])
tricky_text = st.lists(_TRICKY, max_size=120).map("".join) | st.text(max_size=300)


@given(tricky_text, tricky_text)
def test_sms_segments_monotonic_when_appending(a: str, b: str) -> None:
    assert sms_encoding(a + b).segments >= sms_encoding(a).segments


@given(tricky_text)
def test_sms_encoding_agrees_with_is_gsm7(text: str) -> None:
    assert is_gsm7(text) == (sms_encoding(text).encoding == "GSM-7")


@given(tricky_text)
def test_sms_segments_between_ceil_bounds(text: str) -> None:
    sms = sms_encoding(text)
    single, part = (160, 153) if sms.encoding == "GSM-7" else (70, 67)
    if sms.units <= single:
        assert sms.segments == 1
    else:
        # greedy split: no part holds more than `part`, each full part at least `part - 1`
        assert math.ceil(sms.units / part) <= sms.segments <= math.ceil(sms.units / (part - 1))


@given(st.text(alphabet="abc xyz.,!?0123456789ÄÖÜäöüß", max_size=500))
def test_sms_plain_gsm_text_uses_ceil(text: str) -> None:
    expected = 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    assert sms_encoding(text) == SmsEncoding("GSM-7", len(text), expected)


@given(tricky_text, tricky_text)
@example("", "\u200d\u20e3")  # leading combining marks join the space's grapheme cluster
@example("\u0600", "x")  # a Prepend character joins the space's grapheme cluster
def test_x_joining_with_space_adds_at_most_1(a: str, b: str) -> None:
    # A space cannot join URLs, NFC compositions or emoji sequences across it (an emoji sequence
    # starts with a pictograph, a regional indicator or a keycap base, never with a combining
    # mark), so joining costs at most the space itself.
    assert x_weighted_length(a + " " + b) <= x_weighted_length(a) + x_weighted_length(b) + 1


@given(tricky_text)
def test_x_length_is_normalization_invariant(text: str) -> None:
    assert x_weighted_length(unicodedata.normalize("NFC", text)) == x_weighted_length(text)
    assert x_weighted_length(unicodedata.normalize("NFD", text)) == x_weighted_length(text)


@given(tricky_text)
def test_x_weight_bounded_by_code_points(text: str) -> None:
    # Without URLs, every NFC code point weighs 1 or 2, and emoji sequences weigh less than the sum.
    if "http" in text.lower() or "www." in text.lower():
        return
    normalized = unicodedata.normalize("NFC", text)
    assert x_weighted_length(text) <= 2 * len(normalized)


@given(tricky_text)
def test_mastodon_without_urls_or_mentions_is_grapheme_count(text: str) -> None:
    if "@" in text or "://" in text:
        return
    assert mastodon_length(text) == bluesky_graphemes(text)


@given(st.text(max_size=300))
def test_utf_counts_agree_with_codecs(text: str) -> None:
    encodable = text.encode("utf-16-le", errors="surrogatepass")
    assert telegram_length(text) == len(encodable) // 2
    assert utf8_length(text) == len(text.encode("utf-8", errors="surrogatepass"))
    assert bluesky_graphemes(text) <= len(text)


@given(st.sampled_from(sorted(KINDS)), tricky_text)
def test_measure_is_consistent(channel_type: str, text: str) -> None:
    m = measure(channel_type, text)
    assert m.fits == (m.limit is None or m.count <= m.limit)
    assert str(m).startswith(f"{m.count}")
    if channel_type != "bluesky":
        assert m.limit == KINDS[channel_type].length_limit
