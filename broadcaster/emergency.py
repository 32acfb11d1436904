"""The built-in correction: what goes out when the retraction templates cannot be used.

A false alarm must never stay up because of a template (changed after its approval, a
typo, a playbook that is not loaded). These texts are fixed, minimal and shipped with
the code, so they are approved by being code: reviewed like any change to it. They name
the withdrawn warning by its own title (which was approved when it went out), the time
of the correction and the reason. Plain ASCII quotes and no dashes, so that an SMS stays
in GSM-7. A language without a text here gets English.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

REASON_SHOWN = 100  # characters of the reason in the short text
TITLE_SHOWN = 60  # characters of the withdrawn warning's title in the short text


@dataclass(frozen=True)
class Wording:
    title: str
    short: str
    long: str


# {title}: the withdrawn warning's title; {time}: HH:MM of the correction; {reason}.
WORDINGS: dict[str, Wording] = {
    "de": Wording(
        title="KORREKTUR: Warnung aufgehoben",
        short='KORREKTUR {time} Uhr: Die Warnung "{title}" war ein Fehlalarm und ist '
        "aufgehoben. {reason}",
        long='KORREKTUR ({time} Uhr): Die Warnung "{title}" wurde irrtümlich versendet und '
        "ist aufgehoben. Bitte beachten Sie sie nicht mehr.\n\nGrund: {reason}",
    ),
    "en": Wording(
        title="CORRECTION: warning withdrawn",
        short='CORRECTION {time}: The warning "{title}" was a false alarm and is withdrawn. '
        "{reason}",
        long='CORRECTION ({time}): The warning "{title}" was sent in error and is withdrawn. '
        "Please disregard it.\n\nReason: {reason}",
    ),
    "fr": Wording(
        title="CORRECTION : alerte annulée",
        short='CORRECTION {time} : L\'alerte "{title}" était une fausse alerte et est '
        "annulée. {reason}",
        long='CORRECTION ({time}) : L\'alerte "{title}" a été envoyée par erreur et est '
        "annulée. Merci de ne plus en tenir compte.\n\nMotif : {reason}",
    ),
    "tr": Wording(
        title="DÜZELTME: uyarı iptal edildi",
        short='DÜZELTME {time}: "{title}" uyarısı yanlış alarmdı ve iptal edildi. {reason}',
        long='DÜZELTME ({time}): "{title}" uyarısı yanlışlıkla gönderildi ve iptal edildi. '
        "Lütfen dikkate almayın.\n\nNeden: {reason}",
    ),
    "pl": Wording(
        title="KOREKTA: ostrzeżenie odwołane",
        short='KOREKTA {time}: Ostrzeżenie "{title}" było fałszywym alarmem i zostało '
        "odwołane. {reason}",
        long='KOREKTA ({time}): Ostrzeżenie "{title}" zostało wysłane przez pomyłkę i jest '
        "odwołane. Prosimy go nie uwzględniać.\n\nPowód: {reason}",
    ),
    "uk": Wording(
        title="ВИПРАВЛЕННЯ: попередження скасовано",
        short='ВИПРАВЛЕННЯ {time}: Попередження "{title}" було хибною тривогою і скасоване. '
        "{reason}",
        long='ВИПРАВЛЕННЯ ({time}): Попередження "{title}" надіслано помилково, його '
        "скасовано. Будь ласка, не зважайте на нього.\n\nПричина: {reason}",
    ),
    "ru": Wording(
        title="ИСПРАВЛЕНИЕ: предупреждение отменено",
        short='ИСПРАВЛЕНИЕ {time}: Предупреждение "{title}" было ложной тревогой и '
        "отменено. {reason}",
        long='ИСПРАВЛЕНИЕ ({time}): Предупреждение "{title}" отправлено по ошибке и '
        "отменено. Пожалуйста, не принимайте его во внимание.\n\nПричина: {reason}",
    ),
    "ar": Wording(
        title="تصحيح: تم إلغاء التحذير",
        short='تصحيح {time}: التحذير "{title}" كان إنذارا خاطئا وتم إلغاؤه. {reason}',
        long='تصحيح ({time}): تم إرسال التحذير "{title}" عن طريق الخطأ وتم إلغاؤه. '
        "يرجى تجاهله.\n\nالسبب: {reason}",
    ),
}


@dataclass(frozen=True)
class CorrectionText:
    title: str
    short: str
    long: str


def emergency_correction(
    language: str, withdrawn_title: str, reason: str, at: datetime, prefix: str | None = None
) -> CorrectionText:
    """The built-in correction in `language` (English when it has none); `prefix` (the
    drill prefix) goes in front of every text of a drill."""
    wording = WORDINGS.get(language, WORDINGS["en"])
    reason = " ".join(reason.split())
    time = at.strftime("%H:%M")
    short = wording.short.format(
        title=_cut(withdrawn_title, TITLE_SHOWN), time=time, reason=_cut(reason, REASON_SHOWN)
    )
    long = wording.long.format(title=withdrawn_title, time=time, reason=reason)
    title, short, long = wording.title, short.strip(), long.strip()
    if prefix:
        title, short, long = (f"{prefix}: {text}" for text in (title, short, long))
    return CorrectionText(title, short, long)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
