"""Which parts of a text are URLs, as twitter-text finds them: X weighs each as 23, and
Mastodon's StatusLengthValidator counts each as 23 through the same extractor
(`Extractor.extract_urls_with_indices(str, extract_url_without_protocol: false)`).

The fakes' own reading of twitter-text's rules (github.com/twitter/twitter-text,
js/src/regexp/*.js: validUrlPrecedingChars, validDomain, validUrlPath, validUrlQuery*,
invalidUrlWithoutProtocolPrecedingChars, invalidShortDomain, validSpecialShortDomain;
MAX_URL_LENGTH 4096 and 63 characters per domain label), written apart from
broadcaster/limits.py so that a miscount there shows up against a fake. It is checked
against twitter-text's conformance/validate.yml in tests/channels/test_fake_lengths.py.

A subset, on purpose: the top-level domains are a short list (twitter-text knows every
TLD), hosts are names (no IP addresses), and t.co slugs get no special treatment.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex  # type: ignore[import-untyped]  # no stubs; used through typed helpers

MAX_URL_LENGTH = 4096  # twitter-text: longer URLs are not links
MAX_LABEL_LENGTH = 63  # a domain label (RFC 1035), checked by isValidHostAndLength

# A sample of twitter-text's tld_lib.yml; a URL under another TLD is plain text to it.
GENERIC_TLDS = "com|net|org|info|biz|edu|gov|mil|int|name|pro|app|dev|online|site|shop|museum|aero"
COUNTRY_TLDS = "de|at|ch|eu|uk|fr|nl|be|it|es|pl|dk|se|no|fi|cz|lu|li|co|jp|io|ly|tv|us|ru|in|cn"
SPECIAL_SHORT_TLDS = frozenset({"co", "tv"})  # validSpecialCCTLD: "t.co" is a link

_LABEL = r"[\p{L}\p{M}\p{N}](?:[\p{L}\p{M}\p{N}_-]*[\p{L}\p{M}\p{N}])?"
_HOST = regex.compile(
    rf"""
    (?<![A-Za-z0-9@＠$#＃])                    # validUrlPrecedingChars
    (?P<protocol>https?://)?
    (?P<host>(?:{_LABEL}\.)+
      (?P<tld>{GENERIC_TLDS}|{COUNTRY_TLDS}|xn--[0-9a-z]+)
      (?=[^0-9a-zA-Z@+-]|$))                 # a TLD ends the host
    (?::[0-9]+)?
    """,
    regex.IGNORECASE | regex.VERBOSE,
)
# validGeneralUrlPathChars (letters stand in for its Latin, accented and Cyrillic ranges),
# and what a path may end with (validUrlPathEndingChars; a balanced ")" is checked apart).
_PATH_CHARS = regex.compile(r"[\p{L}\p{M}0-9!*';:=+,.$/%#\[\]\-\u2013_~&|@()]")
_PATH_END = regex.compile(r"[\p{L}\p{M}0-9+\-=_#/]")
_QUERY_CHARS = regex.compile(r"[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]", regex.IGNORECASE)
_QUERY_END = regex.compile(r"[a-z0-9\-_&=#/]", regex.IGNORECASE)


@dataclass(frozen=True)
class Url:
    start: int
    end: int


def _path_end(text: str, start: int) -> int:
    """Where a path starting with "/" at `start` ends (twitter-text's validUrlPath)."""
    end = start + 1
    while end < len(text) and _PATH_CHARS.match(text[end]):
        end += 1
    while end > start + 1:
        last, path = text[end - 1], text[start:end]
        if last == ")" and path.count("(") >= path.count(")"):
            break
        if last != ")" and last != "(" and _PATH_END.match(last):
            break
        end -= 1
    return end


def _query_end(text: str, start: int) -> int:
    """Where a query starting with "?" at `start` ends; `start` when it has no valid end."""
    end = start + 1
    while end < len(text) and _QUERY_CHARS.match(text[end]):
        end += 1
    while end > start + 1 and not _QUERY_END.match(text[end - 1]):
        end -= 1
    return end if end > start + 1 else start


def _valid_host(host: str, *, protocol: bool, has_path: bool, tld: str) -> bool:
    labels = host.split(".")
    if any(len(label) > MAX_LABEL_LENGTH for label in labels):
        return False
    if "_" in labels[-2]:  # validDomainName: an underscore only in subdomains
        return False
    if protocol:
        return True
    if not host.isascii():  # without a protocol only ASCII domains are links
        return False
    # invalidShortDomain: "name.ccTLD" without a path is no link ("t.co", "x.tv" are).
    short = len(labels) == 2 and tld.lower() not in GENERIC_TLDS.split("|")
    return has_path or not short or tld.lower() in SPECIAL_SHORT_TLDS


def find_urls(text: str, *, without_protocol: bool) -> list[Url]:
    """The URLs in `text`, in order; `without_protocol` also finds "example.com" (X does,
    Mastodon does not)."""
    urls: list[Url] = []
    position = 0
    while (match := _HOST.search(text, position)) is not None:
        start, end = int(match.start()), int(match.end())
        position = end
        protocol = match.group("protocol") is not None
        # invalidUrlWithoutProtocolPrecedingChars: no "-_./" right before such a URL.
        if not protocol and (not without_protocol or text[start - 1 : start] in list("-_./")):
            continue
        has_path = end < len(text) and text[end] == "/"
        if has_path:
            end = _path_end(text, end)
        if end < len(text) and text[end] == "?":  # a query follows the path directly
            end = _query_end(text, end)
        host = str(match.group("host"))
        if not _valid_host(host, protocol=protocol, has_path=has_path, tld=match.group("tld")):
            continue
        if end - start > MAX_URL_LENGTH:
            continue
        urls.append(Url(start, end))
        position = end
    return urls
