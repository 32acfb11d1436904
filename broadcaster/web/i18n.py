"""Page texts in German and English (placeholder until the page lands)."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "invalid_title": "Link ungültig",
        "invalid_text": "Dieser Link ist ungültig. Es wurde nichts gesendet.",
        "expired_title": "Link abgelaufen",
        "expired_text": "Dieser Link ist abgelaufen. Es wurde nichts gesendet.",
        "done_release_pending": "Freigegeben: wird gleich gesendet.",
        "done_released": "Freigegeben.",
        "done_undone": "Freigabe zurückgenommen.",
        "done_rejected": "Abgelehnt.",
        "done_retracted": "Zurückgezogen.",
        "error_action": "Unbekannte Aktion.",
        "error_wrong_pin": "Falsche PIN, noch {left} Versuche.",
        "error_locked": "Zu viele falsche PINs: dieser Link ist gesperrt.",
        "error_too_late": "Schon entschieden: dieser Link kann das nicht mehr.",
        "error_reason": "Bitte einen Grund angeben (eine Zeile, höchstens 120 Zeichen).",
    },
    "en": {
        "invalid_title": "Invalid link",
        "invalid_text": "This link is not valid. Nothing was sent.",
        "expired_title": "Link expired",
        "expired_text": "This link has expired. Nothing was sent.",
        "done_release_pending": "Released: going out shortly.",
        "done_released": "Released.",
        "done_undone": "Release cancelled.",
        "done_rejected": "Rejected.",
        "done_retracted": "Retracted.",
        "error_action": "Unknown action.",
        "error_wrong_pin": "Wrong PIN, {left} attempts left.",
        "error_locked": "Too many wrong PINs: this link is locked.",
        "error_too_late": "Already decided: this link cannot do that any more.",
        "error_reason": "Please give a reason (one line, at most 120 characters).",
    },
}


def pick_language(accept_language: str | None) -> str:
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("de"):
            return "de"
        if tag.startswith("en"):
            return "en"
    return "de"
