"""The ad-hoc update form's words in German and English."""

from __future__ import annotations

ADHOC_TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "adhoc_title": "Ad-hoc-Meldung zu Einsatz %s",
        "adhoc_intro": (
            "Ein freier Text, den die Vorlagen nicht vorsehen, etwa „A52 zwischen … gesperrt“."
            " Er geht erst hinaus, wenn eine zweite Person ihn freigibt, und läuft dann wie"
            " jede Warnung über alle Kanäle des Einsatzes, im selben Verlauf, und ist"
            " widerrufbar."
        ),
        "adhoc_drill": "In einer Übung beginnt jeder Text mit ÜBUNG.",
        "field_title": "Überschrift",
        "field_short": "Kurzer Text",
        "field_long": "Langer Text",
        "for_channels": "für %s",
        "for_page": "für die Warnseite",
        "language_name_de": "Deutsch",
        "language_name_en": "Englisch",
        "text_required": "Bitte ausfüllen.",
        "adhoc_propose": "Meldung zur Freigabe vorschlagen",
        "adhoc_preview_note": (
            "So geht die Meldung auf jedem Kanal hinaus, gemessen an seiner Längengrenze."
        ),
    },
    "en": {
        "adhoc_title": "Ad-hoc update for incident %s",
        "adhoc_intro": (
            "A free text the templates did not foresee, such as “A52 closed between …”. It"
            " goes out only when a second person releases it, and then like any alert on"
            " every channel of the incident, in the same thread, and it can be retracted."
        ),
        "adhoc_drill": "In a drill every text starts with the drill word (ÜBUNG).",
        "field_title": "Title",
        "field_short": "Short text",
        "field_long": "Long text",
        "for_channels": "for %s",
        "for_page": "for the warning page",
        "language_name_de": "German",
        "language_name_en": "English",
        "text_required": "Please fill this in.",
        "adhoc_propose": "Propose the update for release",
        "adhoc_preview_note": (
            "How the update goes out on each channel, measured against its limit."
        ),
    },
}
