"""How each channel type measures the length of a message text.

Pure functions, no I/O. Every counting rule cites its source; the facts are collected in
CHANNELS.md (sections 1, 2, 3, 5 and 8).

Summary:

* X: weighted length per twitter-text ``config/v3.json`` (280, URL = 23, emoji sequence = 2).
* Mastodon: grapheme clusters, URL = 23, ``@user@domain`` counts as ``@user``
  (Mastodon ``app/validators/status_length_validator.rb``).
* Bluesky: at most 300 graphemes and 3000 UTF-8 bytes (lexicon ``app.bsky.feed.post``).
* Telegram: 4096 characters after entity parsing, counted conservatively in UTF-16 code units
  (Telegram Bot API, ``sendMessage``; entity offsets are UTF-16).
* SMS: GSM-7 septets or UCS-2 (UTF-16) units, split into segments
  (3GPP TS 23.038, unicode.org ``Public/MAPPINGS/ETSI/GSM0338.TXT``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import regex  # type: ignore[import-untyped]  # no stubs / py.typed; used through typed helpers

from broadcaster.text_hygiene import character_name

__all__ = [
    "Measurement",
    "SmsEncoding",
    "bluesky_graphemes",
    "is_gsm7",
    "mastodon_length",
    "measure",
    "measure_bluesky",
    "measure_characters",
    "measure_mastodon",
    "measure_sms",
    "measure_telegram",
    "measure_x",
    "non_gsm7",
    "non_gsm7_note",
    "sms_encoding",
    "telegram_length",
    "utf8_length",
    "x_weighted_length",
]


# --------------------------------------------------------------------------------------------
# Result type
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """A length measured the way one channel type counts it."""

    count: int  # in `unit`
    limit: int | None  # None: the channel type has no practical limit
    unit: str  # "weighted characters", "graphemes", "UTF-8 bytes", "SMS segments", ...
    detail: str = ""  # e.g. "GSM-7, 212 septets" or "UCS-2, 75 UTF-16 units"

    @property
    def fits(self) -> bool:
        return self.limit is None or self.count <= self.limit

    def __str__(self) -> str:
        if self.limit is None:
            text = f"{self.count} {self.unit} (no limit)"
        else:
            text = f"{self.count}/{self.limit} {self.unit}"
        if self.detail:
            text += f" ({self.detail})"
        return text


# --------------------------------------------------------------------------------------------
# Shared helpers: grapheme clusters and URLs
# --------------------------------------------------------------------------------------------

_GRAPHEME_RE = regex.compile(r"\X")


def _graphemes(text: str) -> list[str]:
    """Extended grapheme clusters (UAX #29), as the `regex` module's ``\\X`` finds them."""
    clusters: list[str] = _GRAPHEME_RE.findall(text)
    return clusters


# The one URL pattern, shared by X and Mastodon.
#
# It finds `http://` / `https://` (any case) followed by non-whitespace, and `www.`-prefixed
# hosts without a scheme. A URL ends at whitespace, at characters that cannot appear raw in a URL
# (< > " and the typographic quotes „ “ ” « »), and at emoji. Trailing punctuation is then
# stripped (see _strip_url_tail), as twitter-text does: its path may not end in . , ; : ! ? etc.
# The negative look-behind mirrors twitter-text's `valid_url_preceding_chars` (no URL directly
# after a word character, @, $ or #); `www.` must also not follow . - or /.
#
# Limitation (deliberate): bare domains without scheme or `www.` ("example.com/x") are NOT
# detected as URLs. twitter-text finds them through its TLD list and X counts them as 23; we count
# them character by character, so for a bare domain shorter than 23 characters our X count is too
# low (by at most 22). Write links in alert texts with https://. Mastodon does not give bare
# domains the URL rate either (extract_url_without_protocol: false).
URL_RE = regex.compile(
    r"""
    (?<![\w@$\#])
    (?:
        (?P<scheme>https?://)
      | (?<![.\-/])www\.
    )
    [^\s<>"“”„«»\p{Extended_Pictographic}\p{Regional_Indicator}]+
    """,
    regex.IGNORECASE | regex.VERBOSE,
)

# Characters a URL may not end with (twitter-text: `valid_url_path_ending_chars` excludes them).
_URL_TRAILING_PUNCTUATION = frozenset(".,;:!?'‘’‚…*»«")
_URL_CLOSING_BRACKETS = {")": "(", "]": "[", "}": "{"}
_WORD_CHAR_RE = regex.compile(r"\w")


def _strip_url_tail(url: str) -> str:
    """Drop trailing punctuation; keep a closing bracket only if it is balanced in the URL."""
    while url:
        last = url[-1]
        opening = _URL_CLOSING_BRACKETS.get(last)
        unbalanced = opening is not None and url.count(last) > url.count(opening)
        if last not in _URL_TRAILING_PUNCTUATION and not unbalanced:
            break
        url = url[:-1]
    return url


def _url_spans(text: str, *, schemeless_www: bool) -> list[tuple[int, int]]:
    """(start, end) of every URL in `text`, in order, non-overlapping."""
    spans: list[tuple[int, int]] = []
    for match in URL_RE.finditer(text):
        has_scheme = match.group("scheme") is not None
        if not has_scheme and not schemeless_www:
            continue
        prefix_len = len(match.group("scheme")) if has_scheme else len("www.")
        url = _strip_url_tail(str(match.group(0)))
        # Something host-like must remain after the prefix ("https://." is no URL).
        if len(url) <= prefix_len or _WORD_CHAR_RE.search(url, prefix_len) is None:
            continue
        start = int(match.start())
        spans.append((start, start + len(url)))
    return spans


def _split_urls(text: str, *, schemeless_www: bool) -> Iterator[tuple[bool, str]]:
    """Yield (is_url, piece) for consecutive pieces of `text`."""
    position = 0
    for start, end in _url_spans(text, schemeless_www=schemeless_www):
        if start > position:
            yield False, text[position:start]
        yield True, text[start:end]
        position = end
    if position < len(text):
        yield False, text[position:]


# --------------------------------------------------------------------------------------------
# X (Twitter)
# --------------------------------------------------------------------------------------------

# twitter-text config/v3.json: maxWeightedTweetLength 280, scale 100, defaultWeight 200,
# transformedURLLength 23, emojiParsingEnabled true, and these ranges with weight 100
# (i.e. 1 after dividing by the scale); everything else has the default weight 2.
X_MAX_WEIGHTED_LENGTH = 280
X_URL_WEIGHT = 23
X_DEFAULT_WEIGHT = 2
X_EMOJI_WEIGHT = 2
_X_LIGHT_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x10FF),  # Latin, Greek, Cyrillic, Hebrew, Arabic, ... (incl. Ä Ö Ü ä ö ü ß)
    (0x2000, 0x200D),  # spaces, ZWSP, ZWNJ, ZWJ
    (0x2010, 0x201F),  # dashes and quotes: – — ‘ ’ ‚ “ ” „
    (0x2032, 0x2037),  # primes
)

# An emoji sequence, which twitter-text (through twemoji-parser's regex) weighs defaultWeight (2)
# in total, whatever its number of code points: a grapheme cluster that is
#   * a keycap: [#*0-9] U+FE0F? U+20E3, or
#   * a flag: two regional indicators, or
#   * a pictograph followed only by emoji components: skin-tone modifiers, VS16 (U+FE0F), ZWJ
#     and further pictographs (ZWJ sequences), tag characters (subdivision flags).
# A cluster with VS15 (U+FE0E, text presentation) or any other character (a combining accent) is no
# emoji match there; it is weighed code point by code point.
_EMOJI_SEQUENCE_RE = regex.compile(
    r"[#*0-9]\uFE0F?\u20E3"
    r"|\p{Regional_Indicator}{2}"
    r"|\p{Extended_Pictographic}"
    r"[\p{Extended_Pictographic}\p{Emoji_Modifier}\u200D\uFE0F\u20E3\U000E0020-\U000E007F]*"
)


def _x_code_point_weight(code_point: int) -> int:
    for low, high in _X_LIGHT_RANGES:
        if low <= code_point <= high:
            return 1
    return X_DEFAULT_WEIGHT


def _x_cluster_weight(cluster: str) -> int:
    # A single code point always weighs by its range: twemoji-parser only treats the text-default
    # symbols © ® (U+00A9, U+00AE, inside the 1-weight range) as emoji when followed by U+FE0F, and
    # every other single-code-point emoji lies outside the ranges and weighs 2 either way.
    if len(cluster) > 1 and _EMOJI_SEQUENCE_RE.fullmatch(cluster) is not None:
        return X_EMOJI_WEIGHT
    return sum(_x_code_point_weight(ord(char)) for char in cluster)


def x_weighted_length(text: str) -> int:
    """Weighted length of a post on X (twitter-text v3 `parseTweet().weightedLength`)."""
    normalized = unicodedata.normalize("NFC", text)  # twitter-text normalizes to NFC first
    total = 0
    for is_url, piece in _split_urls(normalized, schemeless_www=True):
        if is_url:
            total += X_URL_WEIGHT
        else:
            total += sum(_x_cluster_weight(cluster) for cluster in _graphemes(piece))
    return total


# --------------------------------------------------------------------------------------------
# Mastodon
# --------------------------------------------------------------------------------------------

# StatusLengthValidator::URL_PLACEHOLDER_CHARS; instances report characters_reserved_per_url.
MASTODON_URL_LENGTH = 23

# Mastodon app/models/account.rb:
#   USERNAME_RE = /[a-z0-9_]+([.-]+[a-z0-9_]+)*/i
#   MENTION_RE  = %r{(?<![=/[:word:]])@((#{USERNAME_RE})(?:@[[:word:]]+([.-]+[[:word:]]+)*)?)}
_MASTODON_MENTION_RE = regex.compile(
    r"(?<![=/\w])@(?P<username>[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@\w+(?:[.-]+\w+)*)?",
    regex.IGNORECASE,
)
# twitter-text `end_mention_match`: a mention directly followed by @ or :// is not a mention.
_MASTODON_END_MENTION_RE = regex.compile(r"@|＠|://")


def _mastodon_rewrite_mentions(piece: str) -> str:
    out: list[str] = []
    position = 0
    for match in _MASTODON_MENTION_RE.finditer(piece):
        end = int(match.end())
        if _MASTODON_END_MENTION_RE.match(piece, end) is not None:
            continue
        out.append(piece[position : int(match.start())])
        out.append("@" + str(match.group("username")))
        position = end
    out.append(piece[position:])
    return "".join(out)


def mastodon_length(
    text: str, url_length: int = MASTODON_URL_LENGTH, *, spoiler_text: str = ""
) -> int:
    """Length as Mastodon's StatusLengthValidator counts it.

    Grapheme clusters of ``spoiler_text + text``, after replacing every URL with `url_length`
    placeholder characters and every mention ``@user@domain`` with ``@user``. Like Mastodon
    (``extract_url_without_protocol: false``) only URLs with a scheme get the URL rate; a
    ``www.`` host without scheme counts in full. `url_length` is the instance's
    ``configuration.statuses.characters_reserved_per_url``.
    """
    pieces: list[str] = []
    for is_url, piece in _split_urls(text, schemeless_www=False):
        pieces.append("x" * url_length if is_url else _mastodon_rewrite_mentions(piece))
    return len(_graphemes(spoiler_text + "".join(pieces)))


# --------------------------------------------------------------------------------------------
# Bluesky, Telegram, byte and code-unit counts
# --------------------------------------------------------------------------------------------

# Bluesky lexicon app.bsky.feed.post: text maxGraphemes 300, maxLength 3000 (UTF-8 bytes).
BLUESKY_MAX_GRAPHEMES = 300
BLUESKY_MAX_BYTES = 3000


def bluesky_graphemes(text: str) -> int:
    """Grapheme clusters, the unit of Bluesky's `maxGraphemes` (URLs count in full)."""
    return len(_graphemes(text))


def utf8_length(text: str) -> int:
    """UTF-8 bytes (Bluesky's `maxLength` unit). Lone surrogates count 3 bytes each."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def _utf16_units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def telegram_length(text: str) -> int:
    """UTF-16 code units (Telegram Bot API: 1-4096 characters after entity parsing; entity
    offsets are UTF-16, so count conservatively: an emoji outside the BMP counts 2)."""
    return sum(_utf16_units(char) for char in text)


# --------------------------------------------------------------------------------------------
# SMS (GSM 03.38)
# --------------------------------------------------------------------------------------------

# 3GPP TS 23.038 section 6.2.1, GSM 7 bit default alphabet (unicode.org GSM0338.TXT), 128
# positions of 1 septet each; 0x1B is the escape to the extension table and not a character.
# 0x09 is drawn as capital Ç in TS 23.038 but mapped to small ç (U+00E7) in GSM0338.TXT; we accept
# only Ç, so a text with ç is (conservatively) counted as UCS-2.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# 3GPP TS 23.038 section 6.2.1.1, extension table: ESC + code, so 2 septets each.
# Form feed (0x0A), ^ (0x14), { } (0x28 0x29), \ (0x2F), [ ~ ] (0x3C-0x3E), | (0x40), € (0x65).
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SMS_GSM7_SINGLE = 160  # septets in one SMS
SMS_GSM7_PART = 153  # septets per part of a concatenated SMS (the UDH takes 7)
SMS_UCS2_SINGLE = 70  # UTF-16 units in one SMS
SMS_UCS2_PART = 67  # UTF-16 units per part of a concatenated SMS


@dataclass(frozen=True)
class SmsEncoding:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (extension characters count 2) or UTF-16 code units
    segments: int


def is_gsm7(text: str) -> bool:
    """True if every character is in the GSM-7 basic or extension table."""
    return all(char in _GSM7_BASIC or char in _GSM7_EXTENSION for char in text)


def _gsm7_septets(char: str) -> int:
    return 2 if char in _GSM7_EXTENSION else 1


def _count_parts(sizes: Iterable[int], single_limit: int, part_limit: int) -> int:
    """Segments needed for units of the given sizes, splitting greedily.

    A unit (an ESC pair of 2 septets, a surrogate pair of 2 UTF-16 units) is never split across
    parts, so a part may carry one unit less than `part_limit`.
    """
    size_list = list(sizes)
    if sum(size_list) <= single_limit:
        return 1  # also the empty text: one (empty) SMS
    parts = 1
    used = 0
    for size in size_list:
        if used + size > part_limit:
            parts += 1
            used = 0
        used += size
    return parts


def non_gsm7(text: str) -> list[str]:
    """The distinct characters outside GSM-7, in the order they first appear: each one
    turns the whole SMS into UCS-2 (70 instead of 160 characters a segment)."""
    return list(dict.fromkeys(char for char in text if not is_gsm7(char)))


def non_gsm7_note(text: str, shown: int = 3) -> str:
    """E.g. `outside GSM-7: „ U+201E DOUBLE LOW-9 QUOTATION MARK at 12, ...`, or ``."""
    found = non_gsm7(text)
    if not found:
        return ""
    named = [f"{char} {character_name(char)} at {text.index(char) + 1}" for char in found[:shown]]
    more = f" and {len(found) - shown} more" if len(found) > shown else ""
    return "outside GSM-7: " + ", ".join(named) + more


def sms_encoding(text: str) -> SmsEncoding:
    """Encoding, length in its units, and number of segments of an SMS."""
    if is_gsm7(text):
        sizes = [_gsm7_septets(char) for char in text]
        segments = _count_parts(sizes, SMS_GSM7_SINGLE, SMS_GSM7_PART)
        return SmsEncoding("GSM-7", sum(sizes), segments)
    sizes = [_utf16_units(char) for char in text]
    segments = _count_parts(sizes, SMS_UCS2_SINGLE, SMS_UCS2_PART)
    return SmsEncoding("UCS-2", sum(sizes), segments)


# --------------------------------------------------------------------------------------------
# Per channel type
# --------------------------------------------------------------------------------------------

# Each channel kind names one of these (broadcaster/channels/kinds.py), with its default
# limit; `limit` is the channel's own (Mastodon: the instance's max_characters; SMS: the
# maximum number of segments).


def measure_x(text: str, limit: int | None) -> Measurement:
    return Measurement(x_weighted_length(text), limit, "weighted characters")


def measure_mastodon(text: str, limit: int | None) -> Measurement:
    return Measurement(mastodon_length(text), limit, "characters")


def measure_bluesky(text: str, limit: int | None) -> Measurement:
    byte_count = utf8_length(text)
    if byte_count > BLUESKY_MAX_BYTES:
        return Measurement(byte_count, BLUESKY_MAX_BYTES, "UTF-8 bytes")
    return Measurement(bluesky_graphemes(text), limit, "graphemes")


def measure_telegram(text: str, limit: int | None) -> Measurement:
    return Measurement(telegram_length(text), limit, "UTF-16 units")


def measure_sms(text: str, limit: int | None) -> Measurement:
    sms = sms_encoding(text)
    unit_name = "septets" if sms.encoding == "GSM-7" else "UTF-16 units"
    detail = f"{sms.encoding}, {sms.units} {unit_name}"
    if sms.encoding == "UCS-2":  # name what costs the segments, so it can be replaced
        detail += f"; {non_gsm7_note(text)}"
    return Measurement(sms.segments, limit, "SMS segments", detail)


def measure_characters(text: str, limit: int | None) -> Measurement:
    """Unicode code points: Facebook, e-mail, webhooks, the CAP feed, the log."""
    return Measurement(len(text), limit, "characters")


def measure(channel_type: str, text: str, *, limit: int | None = None) -> Measurement:
    """Measure `text` the way `channel_type` counts it, against `limit` or the type's
    default limit (a ValueError names an unknown type)."""
    # Imported here: the table of kinds imports this module (and every adapter).
    from broadcaster.channels.kinds import kind

    found = kind(channel_type)
    return found.measure(text, found.length_limit if limit is None else limit)
