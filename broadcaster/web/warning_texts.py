"""The public warning page's own words in German and English (both have the same keys).

The warnings themselves come in the languages their playbook renders; these are the
labels around them. `{n}` is filled by the banner, `{time}` by warnings.js.

Labels only, never a sentence about a warning: what a correction or an all-clear means
for people (a false alarm? is the danger over?) is said by its approved texts alone.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "title": "Aktuelle Warnungen",
        "drill_title": "Übungswarnungen",
        "skip": "Direkt zu den Warnungen",
        "language_nav": "Sprache",
        "drill": "ÜBUNG",
        "drill_banner": "ÜBUNG – keine echte Warnung",
        "drill_note": "Diese Ansicht zeigt nur Übungen. Sie müssen nichts tun.",
        "live_link": "Zu den echten Warnungen",
        "none_heading": "Keine aktuellen Warnungen",
        "none_text": "Zurzeit gibt es keine Warnung. Diese Seite zeigt jede Warnung, "
        "sobald sie herausgegeben ist.",
        "drill_none_heading": "Keine laufende Übung",
        "drill_none_text": "Zurzeit läuft keine Übung.",
        "kind_warning": "Warnung",
        "kind_all_clear": "Entwarnung",
        "kind_correction": "Korrektur",
        "withdrawn": "Zurückgezogen",
        "stage": "Stufe",
        "area": "Gebiet",
        "issued": "Herausgegeben",
        "updated": "Aktualisiert",
        "instruction": "Was Sie jetzt tun sollten",
        "languages": "Auch in",
        "cap_document": "CAP-Dokument",
        "feed": "Atom-Feed",
        "json": "JSON",
        "cap_feed": "CAP-Feed",
        "as_of": "Stand",
        "auto_update": "Diese Seite aktualisiert sich von selbst.",
        "updated_live": "Aktualisiert: {time}",
        "publisher": "Herausgeber",
        "banner_none": "Keine aktuellen Warnungen",
        "banner_more": "+{n} weitere",
        "banner_link": "Alle Warnungen",
    },
    "en": {
        "title": "Current warnings",
        "drill_title": "Exercise warnings",
        "skip": "Skip to the warnings",
        "language_nav": "Language",
        "drill": "EXERCISE",
        "drill_banner": "EXERCISE – not a real warning",
        "drill_note": "This view shows exercises only. You need not do anything.",
        "live_link": "To the real warnings",
        "none_heading": "No current warnings",
        "none_text": "There is no warning at the moment. This page shows every warning as "
        "soon as it is issued.",
        "drill_none_heading": "No exercise under way",
        "drill_none_text": "No exercise is running at the moment.",
        "kind_warning": "Warning",
        "kind_all_clear": "All clear",
        "kind_correction": "Correction",
        "withdrawn": "Withdrawn",
        "stage": "Stage",
        "area": "Area",
        "issued": "Issued",
        "updated": "Updated",
        "instruction": "What you should do now",
        "languages": "Also in",
        "cap_document": "CAP document",
        "feed": "Atom feed",
        "json": "JSON",
        "cap_feed": "CAP feed",
        "as_of": "As of",
        "auto_update": "This page updates itself.",
        "updated_live": "Updated: {time}",
        "publisher": "Issued by",
        "banner_none": "No current warnings",
        "banner_more": "+{n} more",
        "banner_link": "All warnings",
    },
}
