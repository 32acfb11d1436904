"""The New alert form's and the Drills screen's words in German and English."""

from __future__ import annotations

NEW_ALERT_TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "new_title": "Neue Warnung",
        "new_intro": (
            "Für den Fall, dass das Einsatzleitsystem ausfällt: Sie schlagen die Warnung vor,"
            " eine andere Person gibt sie frei (Vier-Augen-Prinzip)."
        ),
        "stage_title": "Nächste Stufe für Einsatz %s",
        "choose": "Szenario wählen",
        "scenario": "Szenario",
        "stage_field": "Stufe",
        "mode_field": "Art",
        "mode_live": "LIVE – echte Warnung an die Bevölkerung",
        "mode_drill": "ÜBUNG – nur Kanäle, die für Übungen eingerichtet sind",
        "required": "Pflichtfeld",
        "limits": "Grenzen",
        "chars": "höchstens %s Zeichen",
        "from_to": "von %s bis %s",
        "at_least": "mindestens %s",
        "at_most": "höchstens %s",
        "time_hint": "Uhrzeit HH:MM",
        "datetime_hint": "Datum und Uhrzeit mit Zeitzone, z. B. 2026-11-23T14:30+01:00",
        "yes": "ja",
        "no": "nein",
        "unset": "– nicht angegeben –",
        "preview": "Vorschau je Kanal",
        "preview_note": (
            "So geht der Text hinaus, mit denselben Vorlagen und Längen wie beim Einsatzleitsystem."
        ),
        "length": "Länge",
        "too_long": "zu lang",
        "dry_run": "in der Übung nur simuliert",
        "no_channels": "Dieses Szenario sendet an keinen Kanal.",
        "fix_params": "Bitte zuerst die Angaben berichtigen.",
        "param_problem": "%s: %s",
        "cannot_render": "Die Texte lassen sich nicht erstellen: %s",
        "unapproved": "Nicht freigegebene Vorlagen (nur in der Übung erlaubt): %s",
        "propose": "Zur Freigabe vorschlagen",
        "start_drill": "Übung starten",
        "not_ready": "Nicht vorgeschlagen: bitte die markierten Angaben berichtigen.",
        "refused": "Nicht angenommen: %s",
        "unknown_playbook": "Szenario %s gibt es nicht. Bitte eines aus der Liste wählen.",
        "unknown_stage": "Stufe %s gibt es in diesem Szenario nicht.",
        "unknown_incident": "Einsatz %s gibt es nicht.",
        "proposed": (
            "Warnung %s ist vorgeschlagen. Eine andere Person muss sie freigeben, bevor"
            " etwas gesendet wird."
        ),
        "drills": "Übungen",
        "drills_intro": (
            "Eine Übung läuft denselben Weg wie eine echte Warnung, bis zur Freigabe durch"
            " die Einsatzleitung, wenn das Szenario sie verlangt. Sie erreicht nur Kanäle, die"
            " für Übungen eingerichtet sind; alle anderen werden simuliert. Am Ende öffnet"
            " sich der Bericht."
        ),
        "drill_of": "Übung: %s",
        "drill_running": "Übung %s läuft",
        "drill_follow": "Der Stand aktualisiert sich selbst; am Ende öffnet sich der Bericht.",
        "drill_done": "Übung %s ist beendet: %s.",
        "open_report": "Bericht öffnen",
        "on_board": "Auf dem Lagebild verfolgen",
        "no_playbooks": "Kein Szenario ist geladen.",
        "recent_drills": "Übungen der letzten Stunden",
    },
    "en": {
        "new_title": "New alert",
        "new_intro": (
            "For when the dispatch system is down: you propose the alert, another person"
            " releases it (four eyes)."
        ),
        "stage_title": "Next stage for incident %s",
        "choose": "Choose a scenario",
        "scenario": "Scenario",
        "stage_field": "Stage",
        "mode_field": "Kind",
        "mode_live": "LIVE – a real warning to the public",
        "mode_drill": "EXERCISE – only channels set up for drills",
        "required": "required",
        "limits": "Limits",
        "chars": "at most %s characters",
        "from_to": "from %s to %s",
        "at_least": "at least %s",
        "at_most": "at most %s",
        "time_hint": "time HH:MM",
        "datetime_hint": "date and time with its UTC offset, e.g. 2026-11-23T14:30+01:00",
        "yes": "yes",
        "no": "no",
        "unset": "– not given –",
        "preview": "Preview per channel",
        "preview_note": (
            "This is the text as it goes out, from the same templates and with the same"
            " lengths as from the dispatch system."
        ),
        "length": "Length",
        "too_long": "too long",
        "dry_run": "simulated in a drill",
        "no_channels": "This scenario posts to no channel.",
        "fix_params": "Correct the params first.",
        "param_problem": "%s: %s",
        "cannot_render": "The texts cannot be made: %s",
        "unapproved": "Templates not approved (allowed in a drill only): %s",
        "propose": "Propose for release",
        "start_drill": "Start the drill",
        "not_ready": "Not proposed: correct what is marked.",
        "refused": "Not accepted: %s",
        "unknown_playbook": "There is no scenario %s. Choose one from the list.",
        "unknown_stage": "This scenario has no stage %s.",
        "unknown_incident": "There is no incident %s.",
        "proposed": (
            "Alert %s is proposed. Another person must release it before anything is sent."
        ),
        "drills": "Drills",
        "drills_intro": (
            "A drill takes the same path as a real alert, up to the duty officer's release"
            " when the scenario asks for one. It reaches only the channels set up for drills;"
            " every other channel is simulated. Its report opens when it ends."
        ),
        "drill_of": "Drill: %s",
        "drill_running": "Drill %s is running",
        "drill_follow": "This updates by itself; the report opens when the drill ends.",
        "drill_done": "Drill %s has ended: %s.",
        "open_report": "Open the report",
        "on_board": "Follow it on the board",
        "no_playbooks": "No scenario is loaded.",
        "recent_drills": "Drills of the last hours",
    },
}
