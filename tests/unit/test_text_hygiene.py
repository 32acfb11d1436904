"""Which characters public text refuses, and how approver names are folded into one person."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.text_hygiene import person_key, person_name, public_text_problem

# Listed here by hand, not taken from the module's table: the test is the specification.
CONTROLS = [*range(0x00, 0x20), *range(0x7F, 0xA0)]
BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
INVISIBLE = [0x00AD, 0x180E, 0x200B, 0x200C, 0x200D, *range(0x2060, 0x2065), 0xFEFF]
SEPARATORS = [0x2028, 0x2029]
HINT = "remove it (invisible or control characters are not allowed in public text)"


@pytest.mark.parametrize("point", CONTROLS + BIDI + INVISIBLE + SEPARATORS, ids=hex)
def test_every_control_bidi_and_invisible_character_is_refused_by_name(point: int) -> None:
    problem = public_text_problem(f"Acker{chr(point)}straße")
    assert problem is not None
    assert problem.startswith(f"contains U+{point:04X} ")
    assert problem.endswith(f" at position 6, {HINT}")
    name = unicodedata.name(chr(point), "")
    if name:
        assert f"U+{point:04X} {name} at" in problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Acker\u202estraße", f"contains U+202E RIGHT-TO-LEFT OVERRIDE at position 6, {HINT}"),
        ("a\nb", f"contains U+000A LINE FEED at position 2, {HINT}"),
        ("a\r\nb", f"contains U+000D CARRIAGE RETURN at position 2, {HINT}"),
        ("Nord\x85Süd", f"contains U+0085 NEXT LINE at position 5, {HINT}"),
        ("\x01", f"contains U+0001 control character at position 1, {HINT}"),
        ("\ufeffText", f"contains U+FEFF ZERO WIDTH NO-BREAK SPACE at position 1, {HINT}"),
        ("ab\udcff", f"contains U+DCFF lone surrogate at position 3, {HINT}"),  # undecodable argv
        # The first refused character is named.
        ("x\u200by\u202e", f"contains U+200B ZERO WIDTH SPACE at position 2, {HINT}"),
    ],
)
def test_the_refusal_names_the_character_its_code_point_and_position(
    text: str, problem: str
) -> None:
    assert public_text_problem(text) == problem


@pytest.mark.parametrize(
    "text",
    [
        "Ackerstraße 12, Düsseldorf-Flingern",
        "ÄÖÜ äöü ß ẞ",
        "„Fenster schließen“ – ‚bitte‘ … »sofort«",
        "10\u00a0km, 5\u202fmin, 3\u2009m",  # no-break, narrow no-break and thin spaces
        "🔥🚒 ⚠️ 👍🏽 🇩🇪",  # incl. the emoji variation selector and skin tone
        "火事 注意 화재 Ελλάδα İstanbul مرحبا",
        "",
    ],
)
def test_typographic_characters_people_need_are_allowed(text: str) -> None:
    assert public_text_problem(text) is None


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))))
def test_text_without_control_format_or_separator_characters_is_allowed(text: str) -> None:
    assert public_text_problem(text) is None


@given(st.text(), st.sampled_from(CONTROLS + BIDI + INVISIBLE + SEPARATORS), st.text())
def test_a_refused_character_anywhere_is_found(before: str, point: int, after: str) -> None:
    problem = public_text_problem(before + chr(point) + after)
    assert problem is not None
    assert problem.startswith("contains U+")


@pytest.mark.parametrize(
    "variant",
    [
        "A. Schmidt",
        "a. schmidt",
        "  A.   Schmidt\t",
        "A.\nSchmidt",
        "A. Schmidt\u200b",
        "\u2066A. Schmidt\u2069",
        "A. Sch\u00admidt",
        "\ufeffA.\u00a0Schmidt",
        "Ａ. Ｓｃｈｍｉｄｔ",  # full-width forms
        "A. SCHMIDT\u2060",
    ],
)
def test_every_variant_of_a_name_is_one_person(variant: str) -> None:
    assert person_key(variant) == person_key("A. Schmidt")


def test_different_names_stay_different_people() -> None:
    keys = {person_key(n) for n in ("A. Schmidt", "A. Schmitt", "B. Schmidt", "A Schmidt")}
    assert len(keys) == 4
    assert person_key("Weiß") == person_key("WEISS")  # caseless, as Unicode defines it


def test_the_display_form_keeps_the_case_and_drops_the_invisible() -> None:
    assert person_name("  b.\u200b  Yılmaz\t") == "b. Yılmaz"
    assert person_name("\u202eA. Schmidt\u202c") == "A. Schmidt"
    assert person_name("Ａ. Ｓｃｈｍｉｄｔ") == "A. Schmidt"
    assert person_name("\u200b \u2060\t\ufeff") == ""
