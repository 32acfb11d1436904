"""The duty officer page's texts in German and English, and the choice between them.

Both languages have exactly the same keys. Placeholders are written ``{name}``: the
backend fills ``{left}`` with ``str.format``; the templates replace ``{n}`` and
``{max}`` themselves, and ``confirm.js`` replaces ``{n}``, ``{done}`` and ``{time}``.
The page passes the whole dict to ``confirm.js`` as JSON, so keep it small and flat.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        # page frame
        "app_name": "Warnungsfreigabe",
        "drill": "ÜBUNG",
        "drill_note": "Nur eine Übung. Die Texte gehen nicht an die Bevölkerung.",
        "live": "ECHTE WARNUNG",
        "live_note": "Nach der Freigabe geht diese Warnung sofort an die Öffentlichkeit.",
        "stage": "Stufe",
        "for_officer": "Für",
        "incident": "Einsatz",
        "alert_id": "Alarm",
        "created_at": "Ausgelöst",
        "expires": "Link gültig bis",
        "expires_in": "noch {time} Min.",
        "expired_now": "Link abgelaufen",
        "call_control_room": "Bei Unklarheit: Leitstelle der Feuerwehr anrufen.",
        "message_hint": "Muss die Warnung trotzdem hinaus, oder ist etwas unklar? "
        "Bitte die Leitstelle der Feuerwehr anrufen.",
        "reload": "Seite neu laden",
        "stale": "Inzwischen wurde über diese Warnung entschieden.",
        "submitting": "Wird übermittelt …",
        # params and messages
        "params_heading": "Angaben der Feuerwehr",
        "no_params": "Keine weiteren Angaben.",
        "messages_heading": "Diese Texte werden gesendet ({n})",
        "messages_heading_sent": "Gesendete Texte ({n})",
        "read_then_decide": "Alle Texte lesen, dann unten entscheiden.",
        "jump_to_decision": "Zur Entscheidung",
        "variant_short": "Kurztext",
        "variant_long": "Langtext",
        "too_long": "Zu lang",
        "too_long_warning": "Achtung: {n} Text(e) zu lang für den Kanal (rot markiert).",
        # deciding
        "decision_heading": "Entscheidung",
        "pin_label": "Ihre PIN",
        "checked_label": "Ich habe die Texte geprüft",
        "release": "Freigeben und senden",
        "release_question": "Jetzt an {n} Kanäle senden?",
        "release_confirm": "Ja, jetzt senden",
        "reject": "Ablehnen – nicht senden",
        "reject_question": "Warnung ablehnen? Es wird nichts gesendet.",
        "reject_reason_label": "Grund (freiwillig)",
        "reject_confirm": "Ja, ablehnen",
        "back": "Zurück",
        # after the decision
        "pending_heading": "Wird gesendet in",
        "seconds": "Sek.",
        "sending_now": "Wird jetzt gesendet …",
        "undo": "STOPP – nicht senden",
        "undo_hint": "Bis dahin kann die Freigabe zurückgenommen werden.",
        "released_heading": "Zustellung",
        "delivery_summary": "{done} von {n} Kanälen fertig",
        "delivery_failed_count": "{n} fehlgeschlagen",
        "rejected_heading": "Abgelehnt",
        "rejected_text": "Diese Warnung wurde abgelehnt. Es wurde nichts gesendet.",
        "closed_heading": "Nicht mehr offen",
        "closed_text": "Über diesen Link kann nichts mehr entschieden werden.",
        "locked_heading": "Link gesperrt",
        "locked_view_text": "Über diesen Link wurde nichts gesendet, und er kann nichts mehr "
        "freigeben.",
        "attempts": "{n} Versuche",
        "open_post": "Beitrag öffnen",
        # states (alert_* for the alert, delivery_* for a channel)
        "alert_awaiting_confirmation": "Wartet auf Freigabe",
        "alert_sending": "Wird gesendet",
        "alert_sent": "Gesendet",
        "alert_partially_failed": "Teilweise fehlgeschlagen",
        "alert_failed": "Fehlgeschlagen",
        "alert_rejected": "Abgelehnt",
        "alert_expired": "Abgelaufen",
        "alert_retracted": "Zurückgezogen",
        "delivery_pending": "Wartet",
        "delivery_sending": "Wird gesendet …",
        "delivery_delivered": "Zugestellt ✓",
        "delivery_failed": "Fehlgeschlagen",
        "delivery_dry_run": "Übung: nur simuliert",
        "delivery_retracted": "Zurückgezogen",
        # retraction of a false alarm
        "retract_heading": "Fehlalarm zurückziehen",
        "retract_text": "Alle Kanäle bekommen eine Korrektur; die Beiträge werden gelöscht, "
        "wo das möglich ist.",
        "retract_reason_label": "Grund (Pflicht, eine Zeile, höchstens {max} Zeichen)",
        "retract_checked_label": "Ja, als Fehlalarm zurückziehen",
        "retract": "Fehlalarm zurückziehen",
        "retract_question": "Korrektur an alle Kanäle senden?",
        "retract_confirm": "Ja, jetzt zurückziehen",
        "retracted_text": "Diese Warnung wurde als Fehlalarm zurückgezogen.",
        # backend messages (message page, notices, errors)
        "invalid_title": "Link ungültig",
        "invalid_text": "Dieser Link ist ungültig. Über ihn wurde nichts gesendet.",
        "foreign_title": "Von einer fremden Seite abgeschickt",
        "foreign_text": "Diese Aktion kam nicht von der Freigabeseite selbst und wurde nicht "
        "ausgeführt. Öffnen Sie den Link aus Ihrer Benachrichtigung erneut.",
        "expired_title": "Link abgelaufen",
        "expired_text": "Dieser Link ist abgelaufen. Die Warnung wurde nicht gesendet.",
        "used_title": "Link schon benutzt",
        "used_text": "Über diesen Link wurde bereits entschieden.",
        "locked_title": "Link gesperrt",
        "locked_text": "Zu viele falsche PINs: dieser Link ist gesperrt. "
        "Über ihn wurde nichts gesendet.",
        "done_release_pending": "Freigegeben: wird gleich gesendet.",
        "done_released": "Freigegeben.",
        "done_undone": "Freigabe zurückgenommen. Es wurde nichts gesendet.",
        "done_rejected": "Abgelehnt.",
        "done_retracted": "Zurückgezogen.",
        "error_action": "Unbekannte Aktion.",
        "error_wrong_pin": "Falsche PIN. Verbleibende Versuche: {left}.",
        "error_locked": "Zu viele falsche PINs: dieser Link ist gesperrt.",
        "error_too_late": "Bereits entschieden: dieser Link kann das nicht mehr.",
        "proposed_in_console": "Im Leitstand vorgeschlagen von",
        "error_own_proposal": (
            "Diese Meldung haben Sie selbst vorgeschlagen. Freigeben muss sie eine andere"
            " Person (Vier-Augen-Prinzip)."
        ),
        "error_reason": "Bitte einen Grund angeben (eine Zeile, höchstens 120 Zeichen).",
    },
    "en": {
        # page frame
        "app_name": "Warning release",
        "drill": "EXERCISE",
        "drill_note": "Only an exercise. The texts do not go out to the public.",
        "live": "LIVE WARNING",
        "live_note": "Once released, this warning goes out to the public at once.",
        "stage": "Stage",
        "for_officer": "For",
        "incident": "Incident",
        "alert_id": "Alert",
        "created_at": "Triggered",
        "expires": "Link valid until",
        "expires_in": "{time} min left",
        "expired_now": "Link expired",
        "call_control_room": "If in doubt: call the fire brigade control room.",
        "message_hint": "Must the warning still go out, or is anything unclear? "
        "Please call the fire brigade control room.",
        "reload": "Reload page",
        "stale": "This warning has been decided in the meantime.",
        "submitting": "Sending …",
        # params and messages
        "params_heading": "Details from the fire brigade",
        "no_params": "No further details.",
        "messages_heading": "These texts will be sent ({n})",
        "messages_heading_sent": "Texts sent ({n})",
        "read_then_decide": "Read every text, then decide at the bottom.",
        "jump_to_decision": "To the decision",
        "variant_short": "Short text",
        "variant_long": "Long text",
        "too_long": "Too long",
        "too_long_warning": "Caution: {n} text(s) too long for the channel (marked red).",
        # deciding
        "decision_heading": "Decision",
        "pin_label": "Your PIN",
        "checked_label": "I have checked the texts",
        "release": "Release and send",
        "release_question": "Send to {n} channels now?",
        "release_confirm": "Yes, send now",
        "reject": "Reject – do not send",
        "reject_question": "Reject this warning? Nothing will be sent.",
        "reject_reason_label": "Reason (optional)",
        "reject_confirm": "Yes, reject",
        "back": "Back",
        # after the decision
        "pending_heading": "Sending in",
        "seconds": "s",
        "sending_now": "Sending now …",
        "undo": "STOP – do not send",
        "undo_hint": "Until then the release can be taken back.",
        "released_heading": "Delivery",
        "delivery_summary": "{done} of {n} channels done",
        "delivery_failed_count": "{n} failed",
        "rejected_heading": "Rejected",
        "rejected_text": "This warning was rejected. Nothing was sent.",
        "closed_heading": "No longer open",
        "closed_text": "Nothing can be decided through this link any more.",
        "locked_heading": "Link locked",
        "locked_view_text": "Nothing was sent through this link, and it can no longer release "
        "anything.",
        "attempts": "{n} attempts",
        "open_post": "Open post",
        # states (alert_* for the alert, delivery_* for a channel)
        "alert_awaiting_confirmation": "Awaiting release",
        "alert_sending": "Sending",
        "alert_sent": "Sent",
        "alert_partially_failed": "Partially failed",
        "alert_failed": "Failed",
        "alert_rejected": "Rejected",
        "alert_expired": "Expired",
        "alert_retracted": "Retracted",
        "delivery_pending": "Waiting",
        "delivery_sending": "Sending …",
        "delivery_delivered": "Delivered ✓",
        "delivery_failed": "Failed",
        "delivery_dry_run": "Exercise: simulated only",
        "delivery_retracted": "Retracted",
        # retraction of a false alarm
        "retract_heading": "Retract false alarm",
        "retract_text": "Every channel gets a correction; the posts are deleted where possible.",
        "retract_reason_label": "Reason (required, one line, at most {max} characters)",
        "retract_checked_label": "Yes, retract as a false alarm",
        "retract": "Retract false alarm",
        "retract_question": "Send the correction to every channel?",
        "retract_confirm": "Yes, retract now",
        "retracted_text": "This warning was retracted as a false alarm.",
        # backend messages (message page, notices, errors)
        "invalid_title": "Invalid link",
        "invalid_text": "This link is not valid. Nothing was sent through it.",
        "foreign_title": "Sent from another site",
        "foreign_text": "This action did not come from the confirm page itself and was not "
        "carried out. Open the link from your notification again.",
        "expired_title": "Link expired",
        "expired_text": "This link has expired. The warning was not sent.",
        "used_title": "Link already used",
        "used_text": "A decision has already been made through this link.",
        "locked_title": "Link locked",
        "locked_text": "Too many wrong PINs: this link is locked. Nothing was sent through it.",
        "done_release_pending": "Released: going out shortly.",
        "done_released": "Released.",
        "done_undone": "Release cancelled. Nothing was sent.",
        "done_rejected": "Rejected.",
        "done_retracted": "Retracted.",
        "error_action": "Unknown action.",
        "error_wrong_pin": "Wrong PIN. Attempts left: {left}.",
        "error_locked": "Too many wrong PINs: this link is locked.",
        "error_too_late": "Already decided: this link cannot do that any more.",
        "proposed_in_console": "Proposed in the console by",
        "error_own_proposal": (
            "You proposed this alert yourself. Another person must release it (four eyes)."
        ),
        "error_reason": "Please give a reason (one line, at most 120 characters).",
    },
}

# The warning page's Web Push offer (templates/push_subscribe.html, static/push.js), kept
# apart from TEXTS so that the confirm page does not carry them. Same keys in both.
PUSH_TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "heading": "Warnungen aufs Handy",
        "explain": "Ihr Browser zeigt neue Warnungen an, auch wenn diese Seite geschlossen ist.",
        "explain_drill": "Testgerät: Dieses Gerät erhält nur Übungen, keine echten Warnungen.",
        "subscribe": "Warnungen als Push-Nachricht erhalten",
        "unsubscribe": "Push-Nachrichten abbestellen",
        "working": "Einen Moment …",
        "subscribed": "Angemeldet. Neue Warnungen erscheinen als Mitteilung.",
        "unsubscribed": "Abgemeldet. Es kommen keine Push-Nachrichten mehr.",
        "denied": "Mitteilungen sind für diese Seite blockiert. Bitte in den "
        "Browser-Einstellungen erlauben.",
        "unsupported": "Dieser Browser kann keine Push-Nachrichten empfangen. Auf dem iPhone: "
        "Seite zum Home-Bildschirm hinzufügen und von dort öffnen.",
        "failed": "Das hat nicht geklappt. Bitte später noch einmal versuchen.",
    },
    "en": {
        "heading": "Warnings on your phone",
        "explain": "Your browser shows new warnings, even when this page is closed.",
        "explain_drill": "Test device: this device gets drills only, never real warnings.",
        "subscribe": "Get warnings as push notifications",
        "unsubscribe": "Stop push notifications",
        "working": "One moment …",
        "subscribed": "Subscribed. New warnings appear as notifications.",
        "unsubscribed": "Unsubscribed. No more push notifications.",
        "denied": "Notifications are blocked for this page. Please allow them in the "
        "browser's settings.",
        "unsupported": "This browser cannot receive push notifications. On an iPhone: add "
        "this page to the Home Screen and open it from there.",
        "failed": "That did not work. Please try again later.",
    },
}

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"


def pick_language(accept_language: str | None) -> str:
    """The page language from an Accept-Language header: "de" or "en", by q-value.

    German when neither is acceptable. Each entry is matched by its primary subtag ("en-GB"
    is "en"); "*" stands for German; among equal q-values the earlier entry wins; q=0 means
    "not this one", and a q-value that is not a number from 0 to 1 counts as 0.
    """
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for entry in (accept_language or "").split(","):
        tag, _, params = entry.partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary == "*":
            primary = DEFAULT_LANGUAGE
        if primary not in LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:  # also NaN
                    q = 0.0
        if q > best_q:
            best, best_q = primary, q
    return best
