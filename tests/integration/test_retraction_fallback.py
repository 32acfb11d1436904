"""A retraction always gets through: when the retraction templates cannot be used, the
built-in correction text goes out instead, to every channel that carried the alert."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.fakes.webhook import FakeWebhook
from tests.integration.harness import (
    API_TOKEN,
    Watcher,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

REASON = "Fehlalarm der Brandmeldeanlage"
# The built-in wordings (broadcaster/emergency.py), written out again here on purpose.
SHORT = {
    "de": r'KORREKTUR \d\d:\d\d Uhr: Die Warnung "(?P<title>.+)" war ein Fehlalarm und ist '
    r"aufgehoben\. (?P<reason>.+)",
    "en": r'CORRECTION \d\d:\d\d: The warning "(?P<title>.+)" was a false alarm and is '
    r"withdrawn\. (?P<reason>.+)",
}
LONG_DE = (
    r'KORREKTUR \(\d\d:\d\d Uhr\): Die Warnung "(?P<title>.+)" wurde irrtümlich versendet und '
    r"ist aufgehoben\. Bitte beachten Sie sie nicht mehr\.\n\nGrund: (?P<reason>.+)"
)
TITLE = {"de": "KORREKTUR: Warnung aufgehoben", "en": "CORRECTION: warning withdrawn"}


def channels(hooks: list[FakeWebhook]) -> dict[str, dict[str, Any]]:
    a, b, c = hooks
    return {
        "hook_a": webhook(a.url, template="short"),
        "hook_b": webhook(b.url, template="long"),
        "hook_c": webhook(c.url, template="short", language="en"),
    }


def change_after_approval(folder: Path, name: str) -> None:
    """A valid template whose bytes no longer match templates/approvals.yaml."""
    path = folder / "templates" / "_retraction" / name
    path.write_text(path.read_text(encoding="utf-8") + " Nicht freigegeben.", encoding="utf-8")


def break_template(folder: Path, name: str) -> None:
    """A template that does not even parse."""
    (folder / "templates" / "_retraction" / name).write_text("{% if %}", encoding="utf-8")


def approve_a_failing_template(folder: Path, name: str) -> None:
    """Approved bytes that fail when rendered: a variable no alert has (strict undefined)."""
    data = b"{{ reason }} {{ no_such_variable }}"
    (folder / "templates" / "_retraction" / name).write_bytes(data)
    approvals = folder / "templates" / "approvals.yaml"
    entries = yaml.safe_load(approvals.read_text(encoding="utf-8"))
    entries[f"_retraction/{name}"]["sha256"] = hashlib.sha256(data).hexdigest()
    approvals.write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")


@dataclass(frozen=True)
class Breakage:
    before_start: bool  # approvals are read at start, templates at each retraction
    spoil: Callable[[Path], None]
    why: str  # how the API's detail and the audit's built_in_text begin
    names: str  # what they name


CASES = {
    "FW-CHANGED": Breakage(
        False,
        lambda folder: change_after_approval(folder, "short.de.j2"),
        "retraction templates not approved: ",
        "_retraction/short.de.j2 was changed after its approval",
    ),
    "FW-FAILING": Breakage(
        True,
        lambda folder: approve_a_failing_template(folder, "long.en.j2"),
        "retraction templates cannot be rendered: ",
        "_retraction/long.en.j2: 'no_such_variable' is undefined",
    ),
    "FW-DRILL-BROKEN": Breakage(
        False,
        lambda folder: break_template(folder, "short.de.j2"),
        "retraction templates cannot be rendered: ",
        "_retraction/short.de.j2: ",
    ),
}


async def retract_http(daemon: Any, alert_id: str, reason: str) -> tuple[int, dict[str, Any]]:
    url = f"http://{daemon.settings.http.listen}/api/alerts/{alert_id}/retract"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"reason": reason}, headers=auth) as r,
    ):
        return r.status, await r.json()


def answered(hook: FakeWebhook) -> list[dict[str, Any]]:
    return [r.json for r in hook.requests if r.status == 200]


def corrections(hook: FakeWebhook) -> list[dict[str, Any]]:
    return [p for p in answered(hook) if p["kind"] == "retraction"]


def corrected_everywhere(watcher: Watcher, alert_id: str) -> dict[str, Any] | None:
    """The original, once every channel has the correction and its post is deleted."""
    alert = watcher.alert(alert_id)
    done = alert and all(d["state"] == "retracted" for d in alert["deliveries"].values())
    return alert if done else None


async def retract_with_broken_templates(
    folder: Path, mosquitto: Any, watcher: Watcher, alert_id: str
) -> tuple[tuple[int, dict[str, Any]], list[Any], dict[str, Any], dict[str, Any]]:
    """The alert goes out (its own templates are fine); its retraction templates are not."""
    case = CASES[alert_id]
    if case.before_start:
        case.spoil(folder)
    mode = "drill" if "DRILL" in alert_id else "live"
    async with running_daemon(folder / "broadcaster.yaml") as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger(alert_id, mode=mode))
        await watcher.alert_in(alert_id, "sent")
        if not case.before_start:
            case.spoil(folder)
        answer = await retract_http(daemon, alert_id, REASON)
        correction = await watcher.alert_in(f"{alert_id}:retraction", "sent", "failed")
        original = await watcher.wait_for(lambda: corrected_everywhere(watcher, alert_id))
        trail = await daemon.store.audit_trail(f"{alert_id}:retraction")
    return answer, trail, correction, original


def assert_named(detail: str, alert_id: str) -> None:
    case = CASES[alert_id]
    assert detail.startswith(case.why), detail
    assert case.names in detail, detail


@pytest.mark.parametrize("alert_id", ["FW-CHANGED", "FW-FAILING"])
async def test_a_live_retraction_goes_out_with_the_built_in_text(
    tmp_path, mosquitto, watcher, hooks, alert_id
):
    write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels(hooks))
    (status, body), trail, correction, original = await retract_with_broken_templates(
        tmp_path, mosquitto, watcher, alert_id
    )
    assert status == 202, body
    assert body["state"] == "retracted"
    assert body["correction"] == f"{alert_id}:retraction"
    assert_named(body["detail"], alert_id)
    assert correction["state"] == "sent"
    assert original["state"] == "retracted"
    [created] = [e for e in trail if e.event == "correction_created"]
    assert created.detail["built_in_text"] == body["detail"]
    assert sorted(created.detail["channels"]) == ["hook_a", "hook_b", "hook_c"]
    for hook, language, variant in zip(
        hooks, ("de", "de", "en"), ("short", "long", "short"), strict=True
    ):
        [alert] = [p for p in answered(hook) if p["kind"] == "alert"]
        [sent] = corrections(hook)
        assert (sent["language"], sent["mode"]) == (language, "live")
        assert sent["title"] == TITLE[language]
        wording = SHORT[language] if variant == "short" else LONG_DE
        match = re.fullmatch(wording, sent["text"])
        assert match is not None, sent["text"]
        assert match["title"] == alert["title"]  # names the warning it withdraws
        assert match["reason"] == REASON
        assert "Nicht freigegeben" not in sent["text"]
        assert "Entwarnung" not in sent["text"]
        assert [p["kind"] for p in answered(hook)] == ["alert", "retraction", "deletion"]


async def test_a_drill_retraction_with_the_built_in_text_is_marked_as_exercise(
    tmp_path, mosquitto, watcher, hooks
):
    """A drill may use changed (unapproved) templates, as every drill text may: it falls
    back only when a retraction template cannot be rendered."""
    write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels(hooks))
    (status, body), trail, correction, original = await retract_with_broken_templates(
        tmp_path, mosquitto, watcher, "FW-DRILL-BROKEN"
    )
    assert status == 202, body
    assert_named(body["detail"], "FW-DRILL-BROKEN")
    assert correction["state"] == "sent"
    assert original["state"] == "retracted"
    [created] = [e for e in trail if e.event == "correction_created"]
    assert created.detail["built_in_text"] == body["detail"]
    prefix = {"de": "ÜBUNG", "en": "EXERCISE"}
    for hook, language, variant in zip(
        hooks, ("de", "de", "en"), ("short", "long", "short"), strict=True
    ):
        [alert] = [p for p in answered(hook) if p["kind"] == "alert"]
        [sent] = corrections(hook)
        assert sent["mode"] == "drill"
        assert sent["title"] == f"{prefix[language]}: {TITLE[language]}"
        assert sent["text"].startswith(f"{prefix[language]}: ")
        wording = SHORT[language] if variant == "short" else LONG_DE
        match = re.fullmatch(wording, sent["text"].removeprefix(f"{prefix[language]}: "))
        assert match is not None, sent["text"]
        # The withdrawn drill's title, without its prefix again inside the quotes.
        assert alert["title"] == f"{prefix[language]}: {match['title']}"
        assert match["reason"] == REASON
    assert corrections(hooks[0])[0]["text"].startswith("ÜBUNG: KORREKTUR ")


async def test_a_drill_retraction_uses_changed_templates_like_any_drill_text(
    tmp_path, mosquitto, watcher, hooks
):
    write_deployment(tmp_path, mqtt_url=mosquitto.url, channels=channels(hooks))
    async with running_daemon(tmp_path / "broadcaster.yaml") as daemon:
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-DRILL-NEW", mode="drill"))
        await watcher.alert_in("FW-DRILL-NEW", "sent")
        change_after_approval(tmp_path, "short.de.j2")
        status, body = await retract_http(daemon, "FW-DRILL-NEW", REASON)
        await watcher.alert_in("FW-DRILL-NEW:retraction", "sent")
        correction = await daemon.store.get_alert("FW-DRILL-NEW:retraction")
        trail = await daemon.store.audit_trail("FW-DRILL-NEW:retraction")
    assert status == 202
    assert "detail" not in body
    assert correction is not None
    assert correction.unapproved == ["_retraction/short.de.j2"]
    [created] = [e for e in trail if e.event == "correction_created"]
    assert "built_in_text" not in created.detail
    [sent] = corrections(hooks[0])
    assert sent["text"].startswith("ÜBUNG: Entwarnung")
    assert "Nicht freigegeben." in sent["text"]
