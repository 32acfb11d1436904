"""The words of the "Templates and approvals" screen, in German and English."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "title": "Vorlagen und Freigaben – Newsroom-Konsole",
        "heading": "Vorlagen und Freigaben",
        "intro": (
            "Eine Live-Warnung nutzt nur Vorlagen, deren aktuelle Fassung zwei verschiedene "
            "Personen freigegeben haben."
        ),
        "signed_in_as": "Angemeldet als {name} ({role})",
        "sign_out": "Abmelden",
        "board": "Zur Übersicht",
        "list": "Alle Vorlagen",
        "other_language": "English",
        "retraction": "Widerruf (alle Playbooks)",
        "stage": "Stufe",
        "state_approved": "Freigegeben",
        "state_awaiting": "Wartet auf zweite Freigabe",
        "state_changed": "Geändert seit der Freigabe",
        "state_never": "Nie freigegeben",
        "variant_title": "Titel",
        "variant_short": "Kurztext",
        "variant_long": "Langtext",
        "variant_instruction": "Handlungsanweisung",
        "approved_by": "Freigegeben von {names} am {date}",
        "earlier_by": "Frühere Fassung freigegeben von {names} am {date}",
        "nobody": "Noch keine Freigabe.",
        "current_text": "Aktueller Text",
        "approved_text": "Freigegebener Text",
        "changes": "Änderungen seit der Freigabe",
        "legend": "+ hinzugefügt, − entfernt (gegenüber dem freigegebenen Text)",
        "added": "Hinzugefügt: ",
        "removed": "Entfernt: ",
        "hunk": "Freigegeben: Zeilen {a} · Aktuell: Zeilen {b}",
        "no_lines": "keine",
        "ending_none": "[kein Zeilenumbruch am Ende]",
        "ending_crlf": "[CR LF]",
        "missing": (
            "Der freigegebene Text ist nicht gespeichert (approvals.yaml einer älteren "
            "Version). Die nächste Freigabe speichert ihn."
        ),
        "mismatch": (
            "Problem: Der in approvals.yaml gespeicherte Text ist nicht die freigegebene "
            "Fassung (anderer SHA-256) und wird nicht gezeigt."
        ),
        "none_full": "Noch keine Fassung wurde von zwei Personen freigegeben.",
        "file": "Datei",
        "language": "Sprache",
        "variant": "Variante",
        "same_text": "Dieser Text ist genau die Fassung, die freigegeben wurde (gleicher SHA-256).",
        "not_stored": (
            "Die Vorlage wurde nach ihrer Freigabe geändert. approvals.yaml hält von der "
            "freigegebenen Fassung nur den SHA-256 fest, nicht ihren Text: Ein Vergleich ist "
            "hier nicht möglich. Den früheren Text finden Sie in Ihrer Versionsverwaltung."
        ),
        "approve": "Diese Fassung freigeben (als {name})",
        "approve_hint": (
            "Sie geben genau den Text oben frei. Eine zweite Person mit eigenem Konto muss "
            "ebenfalls freigeben."
        ),
        "yours": (
            "Sie haben diese Fassung bereits freigegeben. Eine zweite Person mit einem "
            "anderen Konto muss sie freigeben."
        ),
        "officers_only": "Nur Einsatzleitungen (Rolle „officer“) geben Vorlagen frei.",
        "done_approved": "Ihre Freigabe ist gespeichert. Die Vorlage ist für Live-Warnungen frei.",
        "done_awaiting": (
            "Ihre Freigabe ist gespeichert. Nun muss eine zweite Person mit einem anderen "
            "Konto freigeben."
        ),
        "refused_same": (
            "Abgelehnt: {name} hat diese Fassung bereits freigegeben. Das Vier-Augen-Prinzip "
            "verlangt eine zweite Person mit einem anderen Konto."
        ),
        "refused_changed": (
            "Abgelehnt: Die Vorlage wurde geändert, seit Sie sie geöffnet haben. Lesen Sie "
            "den neuen Text und geben Sie ihn dann frei."
        ),
        "refused_broken": (
            "approvals.yaml ist fehlerhaft, es wurde nichts gespeichert: {problems}. "
            "Die Administration muss die Datei reparieren."
        ),
        "unknown": "Keine Vorlage {key} in den geladenen Playbooks.",
        "count": "{approved} von {total} freigegeben",
        "pending": "Nicht für Live-Warnungen frei",
        "none_pending": "Alle Vorlagen sind freigegeben.",
    },
    "en": {
        "title": "Templates and approvals – newsroom console",
        "heading": "Templates and approvals",
        "intro": (
            "A live alert only uses templates whose current version two different people "
            "have approved."
        ),
        "signed_in_as": "Signed in as {name} ({role})",
        "sign_out": "Sign out",
        "board": "To the board",
        "list": "All templates",
        "other_language": "Deutsch",
        "retraction": "Retraction (all playbooks)",
        "stage": "Stage",
        "state_approved": "Approved",
        "state_awaiting": "Awaiting a second approval",
        "state_changed": "Changed since approval",
        "state_never": "Never approved",
        "variant_title": "Title",
        "variant_short": "Short text",
        "variant_long": "Long text",
        "variant_instruction": "Instruction",
        "approved_by": "Approved by {names} on {date}",
        "earlier_by": "An earlier version approved by {names} on {date}",
        "nobody": "No approval yet.",
        "current_text": "Current text",
        "approved_text": "Approved text",
        "changes": "Changes since approval",
        "legend": "+ added, − removed (compared with the approved text)",
        "added": "Added: ",
        "removed": "Removed: ",
        "hunk": "Approved: lines {a} · Current: lines {b}",
        "no_lines": "none",
        "ending_none": "[no line break at the end]",
        "ending_crlf": "[CR LF]",
        "missing": (
            "The approved text was not recorded (approvals.yaml of an older version). The "
            "next approval records it."
        ),
        "mismatch": (
            "Problem: the text kept in approvals.yaml is not the approved version (its "
            "SHA-256 differs), so it is not shown."
        ),
        "none_full": "No version has been approved by two people yet.",
        "file": "File",
        "language": "Language",
        "variant": "Variant",
        "same_text": "This text is exactly the version that was approved (same SHA-256).",
        "not_stored": (
            "The template was changed after its approval. approvals.yaml keeps only the "
            "approved version's SHA-256, not its text, so no diff can be shown here. Your "
            "version control has the earlier text."
        ),
        "approve": "Approve this version (as {name})",
        "approve_hint": (
            "You approve exactly the text above. A second person, with an account of their "
            "own, must approve it too."
        ),
        "yours": (
            "You have approved this version. A second person, with another account, must "
            "approve it."
        ),
        "officers_only": "Only duty officers (role “officer”) approve templates.",
        "done_approved": "Your approval is recorded. The template may now be used live.",
        "done_awaiting": (
            "Your approval is recorded. A second person, with another account, must now approve."
        ),
        "refused_same": (
            "Refused: {name} has already approved this version. Four eyes need a second "
            "person, with another account."
        ),
        "refused_changed": (
            "Refused: the template was changed since you opened it. Read the new text, then "
            "approve it."
        ),
        "refused_broken": (
            "approvals.yaml is broken, nothing was saved: {problems}. An administrator must "
            "fix the file."
        ),
        "unknown": "No template {key} in the loaded playbooks.",
        "count": "{approved} of {total} approved",
        "pending": "Not usable for live alerts",
        "none_pending": "Every template is approved.",
    },
}
