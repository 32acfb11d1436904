"""Which characters public text may not contain, and how approver names are compared.

Public text is what a trigger's string params and a retraction's reason put into posts
read by the public. Control characters could forge extra lines; bidi controls reorder
what a reader sees against what was checked; zero-width and other invisible characters
hide text or make two equal-looking words differ. Typographic characters people need
(umlauts, ß, „“, –, …, emoji, CJK) stay allowed.
"""

from __future__ import annotations

import re
import unicodedata

# What is refused and why: (first, last code point, kind). The kind stands in for the
# name of a character unicodedata has no name for (the controls, surrogates).
REFUSED: tuple[tuple[int, int, str], ...] = (
    (0x0000, 0x001F, "control character"),  # line breaks and tabs forge lines
    (0x007F, 0x009F, "control character"),  # DEL and C1, e.g. U+0085 NEXT LINE
    (0x00AD, 0x00AD, "invisible character"),  # soft hyphen
    (0x061C, 0x061C, "bidi control"),
    (0x180E, 0x180E, "invisible character"),
    (0x200B, 0x200D, "zero-width character"),
    (0x200E, 0x200F, "bidi control"),
    (0x2028, 0x2029, "line break"),
    (0x202A, 0x202E, "bidi control"),
    (0x2060, 0x2064, "invisible character"),  # word joiner, invisible math operators
    (0x2066, 0x2069, "bidi control"),
    (0x206A, 0x206F, "invisible character"),  # deprecated format characters
    (0xD800, 0xDFFF, "lone surrogate"),  # not Unicode text at all (e.g. undecodable argv)
    (0xFEFF, 0xFEFF, "invisible character"),  # byte order mark
    (0xFFF9, 0xFFFB, "invisible character"),  # interlinear annotation
)
_REFUSED = re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b, _ in REFUSED) + "]")
# Unicode's own aliases for the controls people actually send.
_CONTROL_NAMES = {
    0x00: "NULL",
    0x09: "CHARACTER TABULATION",
    0x0A: "LINE FEED",
    0x0B: "LINE TABULATION",
    0x0C: "FORM FEED",
    0x0D: "CARRIAGE RETURN",
    0x1B: "ESCAPE",
    0x7F: "DELETE",
    0x85: "NEXT LINE",
}


def character_name(char: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`; a control without a Unicode name by its kind."""
    point = ord(char)
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(point)
    if not name:
        name = next((kind for a, b, kind in REFUSED if a <= point <= b), "unnamed character")
    return f"U+{point:04X} {name}"


def public_text_problem(text: str) -> str | None:
    """Why `text` may not go into public text (the first refused character), or None."""
    found = _REFUSED.search(text)
    if found is None:
        return None
    # A comma, not "; ": refusal details join one message per param with "; ".
    return (
        f"contains {character_name(found.group())} at position {found.start() + 1}, "
        "remove it (invisible or control characters are not allowed in public text)"
    )


def _invisible(char: str) -> bool:
    return unicodedata.category(char) == "Cf" or _REFUSED.match(char) is not None


def person_name(name: str) -> str:
    """An approver's name as shown and stored: NFKC, invisible characters removed,
    whitespace folded to single spaces; the case is kept. Empty when nothing is left."""
    text = unicodedata.normalize("NFKC", name)
    # Whitespace controls (tab, line feed, U+2028) separate words: fold, do not drop.
    text = "".join(c for c in text if c.isspace() or not _invisible(c))
    return " ".join(text.split())


def person_key(name: str) -> str:
    """What two approver names must share to be one person: `person_name`, caseless."""
    return unicodedata.normalize("NFKC", person_name(name).casefold())
