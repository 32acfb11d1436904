"""The fakes count lengths the way their providers do, checked against the providers'
own published test vectors, not against broadcaster/limits.py: a miscount in the product
must not pass on both sides."""

from __future__ import annotations

import pytest

from tests.fakes import bluesky, mastodon, sms, telegram, x
from tests.fakes.twitter_text import find_urls

ENGLAND_TAGS = "\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"  # 🏴 + gbeng
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 👨‍👩‍👧‍👦 (ZWJs)
POEM = (
    "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。朱雀桥边野草花，"
    "乌衣巷口夕阳斜。旧时王谢堂前燕，飞入寻常百姓家。朝辞白帝彩云间，千里江陵一日还。"
    "两岸猿声啼不住，轻舟已过万重山。泪湿罗巾梦不成，夜深前殿按歌声。红颜未老恩先断，"
    "斜倚薰笼坐到明。独在异乡为异客，每逢佳节倍思亲。遥知兄弟登高处，遍插茱萸少一人。"
)
PUNCTUATION = (
    "This is a tweet with general punctuation characters: "
    + "".join(chr(c) for c in range(0x2000, 0x200C))
    + " ‐ ‑ ‒ – — ― ‖  ‗ ‘ ’ ‚ ‛ “ ” „ ‟ ′ ″ ‴ ‵ ‶ ‷"
)

# github.com/twitter/twitter-text conformance/validate.yml: WeightedTweetsWithDiscountedEmoji-
# CounterTest (config v3, X's current one) and `lengths`.
X_WEIGHTS = [
    ("Hi http://test.co", 26),
    ("http://test.co", 23),
    ("285 chars-" + "xxxxxxxxxx-" * 25, 285),
    ("285 chars- http://www.twitter.com/jack " + "xxxxxxxxxx-" * 24, 299),
    ("xxxxxxxxxx-" * 24 + " http://www.twitter.com/jack ", 289),
    ("https://www.twitter.com/aloha " * 10, 240),
    (POEM, 320),
    ("😷" * 160, 320),
    ("the" + POEM, 323),
    ("282 chars-" + "xxxxxxxxxx-" * 24 + "xxxxxA\u0301x", 281),  # NFC: A + accent is Á
    ("A\u0301B", 2),
    ("A\ufb2c", 4),  # NFC decomposes שּׁ into three code points
    ("H🐱☺" + FAMILY, 7),
    ("😷👾😡🔥💩", 10),
    ("🙋🏽\U0001f468\u200d\U0001f3a4", 4),
    (PUNCTUATION, 110),
    ("randomurlrandomurlrandomurlrandomurlrandomurlrandomurlrandomurls.com", 68),  # 64 > 63
    (FAMILY * 140, 280),
    ("Unicode 10.0 emoji: 🤪; 🧕; 🧕🏾; 🏴" + ENGLAND_TAGS, 34),
    ("Unicode 9.0 emoji: 🤠; 💃; 💃🏾", 29),
    ("This is a test.", 15),
    ("test.com", 23),
    ("Test https://test.com test https://test.com test.com test", 86),
]


@pytest.mark.parametrize(("text", "weight"), X_WEIGHTS)
def test_x_weighs_as_twitter_text_v3(text: str, weight: int) -> None:
    assert x.weighted_length(text) == weight


def test_the_cjk_vector_has_its_160_characters() -> None:
    assert len(POEM) == 160


# twitter-text conformance/extract.yml (urls) and validate.yml (urls_without_protocol).
URLS = [
    (
        "foo.baz foo.co.jp www.xxxxxxx.baz www.foo.co.uk wwwww.xxxxxxx foo.comm foo.somecom "
        "foo.govedu foo.jp",
        ["foo.co.jp", "www.foo.co.uk"],
    ),
    ("t.co/abcde bit.ly/abcde", ["t.co/abcde", "bit.ly/abcde"]),
    ("http://foo.jp http://fooooo.jp", ["http://foo.jp", "http://fooooo.jp"]),
    ("皆さん見てください！ http://google.com", ["http://google.com"]),
    ("example.com", ["example.com"]),
    ("www.example.com", ["www.example.com"]),
    ("t.co", ["t.co"]),
    (
        "example.com/path/to/resource?search=foo&lang=en",
        ["example.com/path/to/resource?search=foo&lang=en"],
    ),
]


@pytest.mark.parametrize(("text", "found"), URLS)
def test_urls_are_found_as_twitter_text_finds_them(text: str, found: list[str]) -> None:
    assert [text[u.start : u.end] for u in find_urls(text, without_protocol=True)] == found


# github.com/mastodon/mastodon spec/validators/status_length_validator_spec.rb, with the
# default MAX_CHARS of 500: (text, spoiler_text, fits).
MASTODON = [
    ("a" * 476 + " http://" + "b" * 30 + ".com/example", "", True),  # URLs count 23 flat
    ("a" * 476 + "http://" + "b" * 30 + ".com/example", "", False),  # not autolinkable
    ("http://example.com/valid?" + "#foo?" * 1000, "", False),  # overly long URL
    ("a" * 493 + " @alice@" + "b" * 30 + ".com", "", True),  # only the front of a mention
    ("@alice@" + "b" * 500 + ".com", "", False),  # an overly long domain counts in full
    ("", "a" * 520, False),
    ("a" * 520, "", False),
    ("b" * 251, "a" * 250, False),
]


@pytest.mark.parametrize(("text", "spoiler", "fits"), MASTODON)
def test_mastodon_counts_as_its_status_length_validator(text: str, spoiler: str, fits: bool):
    assert (mastodon.countable_length(text, spoiler) <= 500) is fits


def test_mastodon_counts_grapheme_clusters() -> None:
    # StatusLengthValidator counts `each_grapheme_cluster`: an emoji sequence or a letter
    # with a combining accent is one character.
    assert mastodon.countable_length(FAMILY + "e\u0301") == 2
    assert mastodon.countable_length("   ", "CW") == 2  # a blank text counts nothing


# The Unicode Standard, section 3.9, Table 3-4 (examples of the encoding forms): one code
# unit for U+004D, U+0430 and U+4E8C, a surrogate pair (D800 DF02) for U+10302.
TELEGRAM = [("M", 1), ("\u0430", 1), ("\u4e8c", 1), ("\U00010302", 2), (FAMILY, 11)]


@pytest.mark.parametrize(("text", "units"), TELEGRAM)
def test_telegram_counts_utf16_code_units(text: str, units: int) -> None:
    assert telegram.utf16_length(text) == units


def test_telegram_counts_the_table_s_code_units() -> None:
    table = "004D 0430 4E8C D800 DF02"  # Table 3-4's UTF-16 row
    assert telegram.utf16_length("M\u0430\u4e8c\U00010302") == len(table.split())


# github.com/bluesky-social/atproto packages/common-web/tests/strings.test.ts.
FAMILY_GIRLS = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f467"
BLUESKY = [
    ("a", 1, 1),
    ("~", 1, 1),
    ("ö", 1, 2),
    ("ñ", 1, 2),
    ("©", 1, 2),
    ("⽘", 1, 3),
    ("☎", 1, 3),
    ("𓋓", 1, 4),
    ("😀", 1, 4),
    (FAMILY_GIRLS, 1, 25),
    ("a~öñ©⽘☎𓋓😀" + FAMILY_GIRLS, 10, 1 + 1 + 2 + 2 + 2 + 3 + 3 + 4 + 4 + 25),
]


@pytest.mark.parametrize(("text", "graphemes", "utf8"), BLUESKY)
def test_bluesky_counts_as_atproto(text: str, graphemes: int, utf8: int) -> None:
    assert bluesky.graphemes(text) == graphemes
    assert bluesky.utf8_bytes(text) == utf8


def test_bluesky_limits_are_the_lexicon_s() -> None:
    assert (bluesky.MAX_GRAPHEMES, bluesky.MAX_BYTES) == (300, 3000)


DIGITS = "1234567890" * 40
RAINBOW = "\U0001f3f3\ufe0f\u200d\U0001f308"  # 🏳️‍🌈: 6 UTF-16 units
# github.com/TwilioDevEd/message-segment-calculator tests/index.test.js: (body, encoding,
# segments).
SMS = [
    (DIGITS[:160], "GSM-7", 1),
    (DIGITS[:161], "GSM-7", 2),
    (DIGITS[:307], "GSM-7", 3),
    ("😜" + DIGITS[1:69], "UCS-2", 1),
    ("😜" + DIGITS[1:70], "UCS-2", 2),
    ("😜" + DIGITS[1:134], "UCS-2", 3),
    ("🇮🇹" + DIGITS[1:67], "UCS-2", 1),
    ("🇮🇹" + DIGITS[1:68], "UCS-2", 2),
    (RAINBOW + DIGITS[1:65], "UCS-2", 1),
    (RAINBOW + DIGITS[1:66], "UCS-2", 2),
    ("😀" + "]" * 68, "UCS-2", 1),
    ("😀" + "]" * 69, "UCS-2", 2),
    ("é\u0301\u0301\u0301" + "a" * 66, "UCS-2", 1),
    ("é\u0301\u0301\u0301" + "a" * 67, "UCS-2", 2),
]
SMS += [(escape + DIGITS[:158], "GSM-7", 1) for escape in "|^€{}[]~\\"]
SMS += [(escape + DIGITS[:159], "GSM-7", 2) for escape in "|^€{}[]~\\"]
SMS += [(char * 70, "UCS-2", 1) for char in "ÁÚúçíÍóÓ"]
SMS += [(char * 71, "UCS-2", 2) for char in "ÁÚúçíÍóÓ"]


@pytest.mark.parametrize(("body", "encoding", "segments"), SMS)
def test_sms_segments_as_twilio_counts_them(body: str, encoding: str, segments: int) -> None:
    assert sms.encoding(body) == encoding
    assert sms.num_segments(body) == segments


def test_the_gsm_table_is_gsm0338() -> None:
    # unicode.org Public/MAPPINGS/ETSI/GSM0338.TXT: septet -> character, spot checks.
    assert len(sms.GSM7_BASIC) == 128
    table = {0x00: "@", 0x02: "$", 0x11: "_", 0x24: "¤", 0x40: "¡", 0x5B: "Ä", 0x5E: "Ü"}
    table |= {0x60: "¿", 0x7B: "ä", 0x7F: "à", 0x1E: "ß", 0x1F: "É", 0x10: "Δ"}
    assert {septet: sms.GSM7_BASIC[septet] for septet in table} == table
    assert sms.num_segments("Ä" * 160) == 1  # umlauts are in the default alphabet
    assert sms.num_segments("€" * 80) == 1
    assert sms.num_segments("€" * 81) == 2
