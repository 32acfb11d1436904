"""The built-in correction text (broadcaster/emergency.py): complete in every language,
and short enough for an SMS and a post on X. Lengths are counted here with our own code
from the published rules (3GPP TS 23.038 GSM 7-bit alphabet, the twitter-text weighting),
not with broadcaster/limits.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broadcaster.emergency import WORDINGS, emergency_correction

AT = datetime(2026, 11, 23, 14, 5, tzinfo=UTC)

# GSM 03.38 default alphabet (one septet each) and its extension table (escape + one).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"


def septets(text: str) -> list[int] | None:
    """Septets per character in GSM-7, or None when the text needs UCS-2."""
    out = []
    for char in text:
        if char in GSM7_BASIC:
            out.append(1)
        elif char in GSM7_EXTENSION:
            out.append(2)
        else:
            return None
    return out


def sms_segments(text: str) -> int:
    """Concatenated SMS: 160 septets alone, else 153 per part (an escape pair is never
    split); UCS-2: 70 UTF-16 units alone, else 67 per part (a surrogate pair is never split)."""
    costs = septets(text)
    single, part = (160, 153)
    if costs is None:
        costs = [len(c.encode("utf-16-le")) // 2 for c in text]
        single, part = (70, 67)
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > part:
            segments, used = segments + 1, 0
        used += cost
    return segments


def x_weight(text: str) -> int:
    """twitter-text v3: code points in these ranges weigh 1, every other one 2 (no URLs
    or emoji in these texts)."""
    light = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
    return sum(1 if any(a <= ord(c) <= b for a, b in light) else 2 for c in text)


def test_the_counters_agree_with_the_published_examples():
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2
    assert sms_segments("a" * 306) == 2
    assert sms_segments("a" * 307) == 3
    assert sms_segments("€" * 80) == 1
    assert sms_segments("€" * 81) == 2
    assert sms_segments("a" * 152 + "€" + "a" * 152) == 3  # 306 septets; the pair moves on
    assert sms_segments("ä" * 160) == 1  # German umlauts are in the default alphabet
    assert sms_segments("ł" * 70) == 1
    assert sms_segments("ł" * 71) == 2
    assert x_weight("Großbrand") == 9
    assert x_weight("火事") == 4


def filled(language: str, title: str = "TITEL-MARKE", reason: str = "GRUND-MARKE") -> list[str]:
    built = emergency_correction(language, title, reason, AT)
    return [built.title, built.short, built.long]


@pytest.mark.parametrize("language", sorted(WORDINGS))
def test_every_wording_fills_every_placeholder(language):
    title, short, long = filled(language)
    for text in (short, long):
        assert "TITEL-MARKE" in text, text
        assert "GRUND-MARKE" in text, text
        assert "14:05" in text, text
    for text in (title, short, long):
        assert "{" not in text, text
        assert "}" not in text, text
        assert text == text.strip()
        assert text
    assert title == WORDINGS[language].title
    assert "TITEL-MARKE" not in title  # the correction's own title is fixed


@pytest.mark.parametrize("language", sorted(WORDINGS))
def test_the_long_text_keeps_title_and_reason_whole(language):
    title, reason = "T" * 200, "R" * 300
    _, short, long = filled(language, title, reason)
    assert title in long
    assert reason in long
    assert title not in short
    assert reason not in short


def test_an_unknown_language_gets_english():
    assert filled("xx") == filled("en")
    assert filled("de-AT") == filled("en")  # a language the wordings do not name exactly
    assert filled("en")[1].startswith("CORRECTION 14:05: ")


def test_a_drill_prefix_leads_every_text():
    built = emergency_correction("de", "Großbrand", "Übung beendet", AT, prefix="ÜBUNG")
    for text in (built.title, built.short, built.long):
        assert text.startswith("ÜBUNG: KORREKTUR"), text
    assert built.short.count("ÜBUNG") == 1


def test_the_reason_becomes_one_line():
    _, short, long = filled("de", reason="Fehlalarm\n\nder   Brandmeldeanlage")
    assert short.endswith("aufgehoben. Fehlalarm der Brandmeldeanlage")
    assert long.endswith("Grund: Fehlalarm der Brandmeldeanlage")


# A 60-character title and a 120-character reason, in plain letters and in the worst
# case for SMS (every character from the extension table, two septets each).
PLAIN_TITLE = ("Großbrand in Flingern-Nord, Ackerstraße 12: Fenster schließen" * 2)[:60]
PLAIN_REASON = ("Fehlalarm der Brandmeldeanlage im Gewerbegebiet, kein Feuer. " * 3)[:120]
CASES = {
    "plain": (PLAIN_TITLE, PLAIN_REASON),
    "extension characters": ("{}" * 30, "[]" * 60),  # ASCII: X counts them as one
    "far too long": (PLAIN_TITLE * 4, PLAIN_REASON * 5),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("language", ["de", "en"])
@pytest.mark.parametrize("prefix", [None, "drill"])
def test_the_short_text_fits_three_sms_and_one_post_on_x(language, case, prefix):
    title, reason = CASES[case]
    assert len(title) >= 60
    assert len(reason) >= 120
    drill = {"de": "ÜBUNG", "en": "EXERCISE"}[language] if prefix else None
    short = emergency_correction(language, title, reason, AT, drill).short
    assert septets(short) is not None, short  # stays in GSM-7: no UCS-2 surprise
    assert sms_segments(short) <= 3, (sms_segments(short), short)
    assert x_weight(short) <= 280, (x_weight(short), short)
    assert title[:50] in short
    assert reason[:50] in short


def test_the_limits_are_not_met_by_accident():
    """The plain German case takes two SMS: a wording growing by half would show."""
    title, reason = CASES["plain"]
    short = emergency_correction("de", title, reason, AT).short
    assert sms_segments(short) == 2
    assert 200 < x_weight(short) <= 280
