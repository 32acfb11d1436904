"""Telling every duty officer at once, on their internal channels: a refused live trigger
(someone must call the control room: the warning did not go out), or a playbook or channel
file that is broken and set aside. A drill's refusal tells nobody.

Sent in the background with the dispatcher's retries, so the intake never waits for an
SMS gateway. A notice about a broken file is sent once per distinct error: a lease in the
store says which daemon sends it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import structlog

from broadcaster.channels.base import OutgoingMessage
from broadcaster.channels.settings import ChannelConfig
from broadcaster.config import Settings, drill_word
from broadcaster.models import Alert, AuditEntry, Delivery, ManualTask, utcnow
from broadcaster.store.base import Store

log = structlog.get_logger(__name__)

Notify = Callable[[str, OutgoingMessage], Awaitable[bool]]
TOLD_FOR = timedelta(days=1)  # the same broken file is told again after a day at the latest

WORDS = {
    "de": {
        "refused_title": "Auslösung abgewiesen: {scenario}",
        "refused_text": "Eine Auslösung der Leitstelle ({trigger}) wurde abgewiesen und NICHT "
        "gesendet: {error}: {detail}. Bitte die Leitstelle anrufen.",
        "aside_title": "{what} nicht geladen: {name}",
        "aside_text": "{what} {name} ist nicht geladen: {error}. {consequence} Bitte die Datei "
        "korrigieren.",
        "playbook": "Playbook",
        "channel": "Kanal",
        "playbook_consequence": "Auslösungen dafür werden abgewiesen.",
        "channel_consequence": "Über diesen Kanal geht nichts hinaus.",
        "unknown": "unbekannt",
        "selftest_title": "Wöchentlicher Selbsttest: {count} Kanal/Kanäle ohne Antwort",
        "selftest_text": "Die Selbsttest-Übung {alert} hat nicht erreicht: {failed}. Bitte diese "
        "Kanäle prüfen (Konsole: Kanäle), bevor eine echte Warnung sie braucht.",
        "task_title": "Von Hand zu tun: Beitrag löschen ({channel})",
        "task_text": "Die Warnung {alert} wurde zurückgezogen und die Korrektur auf {channel} "
        "veröffentlicht. Der falsche Beitrag ist noch online: {task}. "
        "Danach: broadcaster task done {alert} {channel}",
    },
    "en": {
        "refused_title": "Trigger refused: {scenario}",
        "refused_text": "A trigger from the control room ({trigger}) was refused and NOT sent: "
        "{error}: {detail}. Please call the control room.",
        "aside_title": "{what} not loaded: {name}",
        "aside_text": "{what} {name} is not loaded: {error}. {consequence} Please fix the file.",
        "playbook": "Playbook",
        "channel": "Channel",
        "playbook_consequence": "Its triggers are refused.",
        "channel_consequence": "Nothing goes out on this channel.",
        "unknown": "unknown",
        "selftest_title": "Weekly self-test: {count} channel(s) did not answer",
        "selftest_text": "The self-test drill {alert} did not reach: {failed}. Check these "
        "channels (console: Channels) before a real warning needs them.",
        "task_title": "To do by hand: delete a post ({channel})",
        "task_text": "Alert {alert} was retracted and the correction is out on {channel}. The "
        "false post is still up: {task}. Then: broadcaster task done {alert} {channel}",
    },
}


class OfficerNotices:
    def __init__(
        self,
        settings: Settings,
        channels: Mapping[str, ChannelConfig],
        notify: Notify,
        store: Store,
        *,
        owner: str,
        language: Callable[[], str],
    ) -> None:
        self.settings = settings
        self.channels = channels
        self.notify = notify
        self.store = store
        self.owner = owner
        self.language = language  # the deployment's primary language, as it is now
        self.tasks: set[asyncio.Task[None]] = set()

    def channel_ids(self) -> list[str]:
        """Every duty officer's internal channels, each once, in order."""
        seen: dict[str, None] = {}
        for officer in self.settings.duty_officers:
            seen.update(dict.fromkeys(officer.notify))
        return list(seen)

    def refused(self, refusal: Mapping[str, Any], context: Mapping[str, str], key: str) -> None:
        """A refused live trigger (or one whose mode could not be read): tell them now."""
        if context.get("mode") == "drill" or refusal["error"] == "duplicate":
            return
        lang = self.language()
        w = WORDS.get(lang, WORDS["en"])
        scenario = context.get("scenario") or w["unknown"]
        message = OutgoingMessage(
            kind="refusal",
            alert_id=refusal.get("trigger_id") or "",
            incident="",
            scenario=context.get("scenario", ""),
            stage=context.get("stage", ""),
            mode="live",
            language=lang,
            title=w["refused_title"].format(scenario=scenario),
            text=w["refused_text"].format(
                trigger=refusal.get("trigger_id") or w["unknown"],
                error=refusal["error"],
                detail=refusal["detail"],
            ),
            idempotency_key=f"refusal:{key}",
            error=str(refusal["error"]),
            detail=str(refusal["detail"]),
        )
        self._send(message, event="refusal_told", detail={"error": refusal["error"]})

    async def set_aside(self, kind: str, name: str, error: str) -> None:
        """A broken playbook or channel file: tell them once per distinct error."""
        digest = hashlib.sha256(f"{kind}:{name}:{error}".encode()).hexdigest()[:16]
        now = utcnow()
        lease = f"told:{kind}:{name}:{digest}"
        if await self.store.take_lease(lease, self.owner, now + TOLD_FOR, now) != self.owner:
            return  # told already (by this daemon or another)
        lang = self.language()
        w = WORDS.get(lang, WORDS["en"])
        what = w[kind]
        message = OutgoingMessage(
            kind="refusal",
            alert_id="",
            incident="",
            scenario=name if kind == "playbook" else "",
            stage="",
            mode="live",
            language=lang,
            title=w["aside_title"].format(what=what, name=name),
            text=w["aside_text"].format(
                what=what, name=name, error=error, consequence=w[f"{kind}_consequence"]
            ),
            idempotency_key=f"set-aside:{digest}",
            error="unknown_scenario" if kind == "playbook" else "channel_not_loaded",
            detail=f"{kind} {name} is not loaded: {error}",
        )
        self._send(message, event="set_aside_told", detail={"kind": kind, "name": name})

    def manual_task(self, correction: Alert, original: Delivery, task: ManualTask) -> None:
        """A retracted post that a person must delete by hand: tell them now, in drills
        too (a drill's test account has the post; the text carries the drill prefix).
        Sent as a `refusal` with error `manual_task` (the contract's kind for what goes
        to the officers only)."""
        lang = self.language()
        w = WORDS.get(lang, WORDS["en"])
        names = {"alert": original.alert_id, "channel": original.channel_id, "task": task.task}
        title, text = w["task_title"].format(**names), w["task_text"].format(**names)
        if correction.mode == "drill":
            prefix = self.drill_prefix(lang)
            title, text = f"{prefix}: {title}", f"{prefix}: {text}"
        message = OutgoingMessage(
            kind="refusal",
            alert_id=original.alert_id,
            incident=correction.incident,
            scenario=correction.scenario,
            stage=correction.stage,
            mode=correction.mode,
            language=lang,
            title=title,
            text=text,
            idempotency_key=f"manual-task:{original.alert_id}:{original.channel_id}",
            error="manual_task",
            detail=task.task,
        )
        self._send(
            message,
            event="manual_task_told",
            detail={"channel": original.channel_id, "task": task.task},
            alert_id=original.alert_id,
        )

    def selftest_failed(self, alert_id: str, failed: Mapping[str, str]) -> None:
        """The weekly self-test found channels that did not answer (selftest.py)."""
        lang = self.language()
        w = WORDS.get(lang, WORDS["en"])
        listed = "; ".join(f"{cid} ({why})" for cid, why in failed.items())
        prefix = self.drill_prefix(lang)
        message = OutgoingMessage(
            kind="refusal",
            alert_id=alert_id,
            incident=alert_id,
            scenario="",
            stage="",
            mode="drill",
            language=lang,
            title=f"{prefix}: " + w["selftest_title"].format(count=len(failed)),
            text=f"{prefix}: " + w["selftest_text"].format(alert=alert_id, failed=listed),
            idempotency_key=f"selftest:{alert_id}",
            error="selftest_failed",
            detail=listed,
        )
        self._send(message, event="selftest_told", detail={"failed": sorted(failed)})

    def drill_prefix(self, language: str) -> str:
        return drill_word(self.settings.drill.prefix, language)

    def _send(
        self,
        message: OutgoingMessage,
        *,
        event: str,
        detail: dict[str, Any],
        alert_id: str | None = None,
    ) -> None:
        channels = self.channel_ids()
        if not channels:
            log.warning("no_duty_officer_to_tell", title=message.title)
            return
        task = asyncio.create_task(self._tell(channels, message, event, detail, alert_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _tell(
        self,
        channels: list[str],
        message: OutgoingMessage,
        event: str,
        detail: dict[str, Any],
        alert_id: str | None = None,
    ) -> None:
        sent = [cid for cid in channels if await self.notify(cid, message)]
        await self.store.audit(
            AuditEntry(
                alert_id=alert_id,
                event=event,
                detail={**detail, "channels": sent, "title": message.title},
            )
        )

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
