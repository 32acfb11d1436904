"""The sign-in and refusal pages' words, in German and English."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "title": "Anmelden – Newsroom-Konsole",
        "heading": "Newsroom-Konsole",
        "intro": "Melden Sie sich mit Ihrem Konto an.",
        "name": "Benutzername",
        "password": "Passwort",
        "submit": "Anmelden",
        "other_language": "English",
        "wrong": "Benutzername oder Passwort ist falsch.",
        "locked": (
            "Zu viele Fehlversuche: Das Konto ist gesperrt. Versuchen Sie es in "
            "{minutes} Min. erneut."
        ),
        "disabled": "Dieses Konto ist deaktiviert. Wenden Sie sich an die Administration.",
        "oidc_or": "oder mit Name und Passwort:",
        "oidc_unreachable": (
            "Die Anmeldung der Stadt antwortet gerade nicht. Bitte mit Name und Passwort "
            "anmelden oder es gleich noch einmal versuchen."
        ),
        "oidc_expired": (
            "Diese Anmeldung ist abgelaufen oder gehört zu einem anderen Fenster. Bitte noch "
            "einmal anmelden."
        ),
        "oidc_refused": (
            "Die Anmeldung der Stadt wurde nicht angenommen. Bitte noch einmal anmelden; wenn"
            " es wieder scheitert, die Administration fragen."
        ),
        "oidc_no_account": (
            "Für dieses Stadt-Konto gibt es kein Konto in der Konsole. Die Administration "
            "legt es mit „broadcaster user add“ an."
        ),
        "continue_title": "Angemeldet",
        "continue_text": "Angemeldet. Weiter zur Konsole …",
        "expired": "Das Formular war abgelaufen. Bitte melden Sie sich erneut an.",
        "signed_out": "Sie sind abgemeldet.",
        "forbidden_title": "Keine Berechtigung",
        "forbidden_role": (
            "Ihre Rolle „{role}“ reicht dafür nicht aus (nötig: „{needed}“). "
            "Wenden Sie sich an die Administration."
        ),
        "forbidden_csrf": (
            "Die Anfrage wurde abgelehnt: Sie kam nicht von einer Seite der Konsole oder "
            "das Formular war veraltet. Laden Sie die Seite neu."
        ),
        "back": "Zur Konsole",
        "error_label": "Fehler",
    },
    "en": {
        "title": "Sign in – newsroom console",
        "heading": "Newsroom console",
        "intro": "Sign in with your account.",
        "name": "User name",
        "password": "Password",
        "submit": "Sign in",
        "other_language": "Deutsch",
        "wrong": "The user name or password is wrong.",
        "locked": ("Too many failed attempts: the account is locked. Try again in {minutes} min."),
        "disabled": "This account is disabled. Ask an administrator.",
        "oidc_or": "or with name and password:",
        "oidc_unreachable": (
            "The city's sign-in does not answer right now. Sign in with name and password, or"
            " try again in a moment."
        ),
        "oidc_expired": (
            "This sign-in has expired or belongs to another window. Please sign in again."
        ),
        "oidc_refused": (
            "The city's sign-in was not accepted. Please sign in again; if it fails again, "
            "ask an administrator."
        ),
        "oidc_no_account": (
            "There is no console account for this city account. An administrator adds it with"
            " `broadcaster user add`."
        ),
        "continue_title": "Signed in",
        "continue_text": "Signed in. On to the console …",
        "expired": "The form had expired. Please sign in again.",
        "signed_out": "You are signed out.",
        "forbidden_title": "Not allowed",
        "forbidden_role": (
            "Your role “{role}” does not allow this (it needs “{needed}”). Ask an administrator."
        ),
        "forbidden_csrf": (
            "The request was refused: it did not come from a console page, or the form was "
            "out of date. Reload the page."
        ),
        "back": "To the console",
        "error_label": "Error",
    },
}
