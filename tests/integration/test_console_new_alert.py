"""The console's New alert form on a real daemon: the form comes from the playbook, the
preview is the daemon's rendering, and a live alert proposed by one person goes out only
when another releases it (never by its proposer, never by a timeout); a drill started
from the form reaches only a channel set up for drills; bad params create nothing."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import yaml

from tests.integration.harness import (
    FIRE,
    console_page,
    console_post,
    console_sign_in,
    publish,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

XSS = '<script>alert("x")</script>'
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NEW = "/console/alerts/new"
NO_UNDO = {"confirm": {"undo_window": "0s"}}


def fire_form(csrf: str, **changes: str) -> dict[str, str]:
    form = {"csrf": csrf, "playbook": "major_fire", "stage": "warning", "mode": "live"}
    form |= {f"param.{k}": v for k, v in FIRE.items()}
    return form | changes


def config_for(tmp_path, mosquitto, hooks, **changes: Any):
    """`web` posts drills, `quiet` (the second fake) never does."""
    channels = {"web": webhook(hooks[0].url), "quiet": webhook(hooks[1].url, drill="dry_run")}
    return write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels=channels, extra=NO_UNDO, **changes
    )


async def test_a_live_alert_proposed_by_one_officer_is_released_by_another_only(
    tmp_path, mosquitto, watcher, hooks
):
    hook = hooks[0]
    config = config_for(tmp_path, mosquitto, hooks)  # major_fire: confirmation none
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as a,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as b,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as editor,
        running_daemon(config) as daemon,
    ):
        await console_sign_in(a, root, daemon, "a.meier", "officer")
        await console_sign_in(b, root, daemon, "b.kaya", "officer")
        await console_sign_in(editor, root, daemon, "c.presse", "editor")

        async with a.get(f"{root}{NEW}?lang=de") as answer:
            choose = await answer.text()
        assert 'data-testid="choose-major_fire"' in choose
        async with a.get(f"{root}{NEW}?lang=de&playbook=major_fire") as answer:
            form_page = await answer.text()
        assert '<html lang="de">' in form_page
        assert "Einsatzort" in form_page  # the playbook's German label
        assert 'name="param.location" type="text"' in form_page
        assert 'maxlength="60"' in form_page
        assert 'name="param.radius_m" type="number"' in form_page
        assert 'min="100"' in form_page
        assert 'max="5000"' in form_page
        csrf = CSRF.search(form_page)
        assert csrf is not None

        status, fragment, _ = await console_post(
            a, f"{root}{NEW}/preview?lang=en", fire_form(csrf.group(1))
        )
        assert status == 200
        assert 'data-ready="yes"' in fragment
        assert 'data-testid="preview-web"' in fragment
        assert "Ackerstraße 12" in fragment
        assert re.search(r'data-testid="length-web">Length: \d+', fragment)

        status, _, where = await console_post(a, f"{root}{NEW}?lang=en", fire_form(csrf.group(1)))
        assert status == 303
        incident = where.split("/console/incidents/")[1].split("?")[0]
        assert incident.startswith("CONSOLE-")
        alert = await daemon.store.get_alert(incident)
        assert alert is not None
        assert alert.state == "awaiting_confirmation"  # even with confirmation: none
        assert alert.proposed_by == "a.meier"
        trail = await daemon.store.audit_trail(incident)
        received = next(e for e in trail if e.event == "trigger_received")
        assert received.actor == "console:a.meier"
        assert received.detail["proposed_by"] == "a.meier"

        page = f"{root}/console/incidents/{incident}"
        async with a.get(f"{page}?lang=en") as answer:
            mine = await answer.text()
        assert f'data-testid="own-{incident}"' in mine
        assert f'data-testid="release-{incident}"' not in mine
        decide = f"{page}/alerts/{incident}/decide?lang=en"
        status, text, _ = await console_post(
            a, decide, {"csrf": csrf.group(1), "action": "release"}
        )
        assert status == 409
        assert "Another person must release it" in text
        editor_csrf = (await console_page(editor, f"{page}?lang=en"))[1]
        status, _, _ = await console_post(
            editor, decide, {"csrf": editor_csrf, "action": "release"}
        )
        assert status == 403  # an editor proposes, never releases
        waiting = await daemon.store.get_alert(incident)
        assert waiting is not None
        assert waiting.state == "awaiting_confirmation"
        assert hook.requests == []

        b_csrf = (await console_page(b, f"{page}?lang=en"))[1]
        async with b.get(f"{page}?lang=en") as answer:
            theirs = await answer.text()
        assert f'data-testid="release-{incident}"' in theirs
        status, text, _ = await console_post(b, decide, {"csrf": b_csrf, "action": "release"})
        assert status == 200, text
        await watcher.alert_in(incident, "sent")
        assert len(hook.requests) == 1
        assert len(hooks[1].requests) == 1  # a live alert goes to every public channel
        assert hook.requests[0].json["alert_id"] == incident
        released = await daemon.store.get_alert(incident)
        assert released is not None
        assert released.confirmed_by == "b.kaya"
        status, _, _ = await console_post(b, decide, {"csrf": b_csrf, "action": "release"})
        assert status == 409  # decided already
        assert len(hook.requests) == 1


async def test_a_proposal_is_never_sent_by_a_timeout(tmp_path, mosquitto, watcher, hooks):
    hook = hooks[0]
    confirmation = {"mode": "required", "timeout": "1s", "on_timeout": "send"}
    config = config_for(tmp_path, mosquitto, hooks, confirmation=confirmation)
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as a,
        running_daemon(config) as daemon,
    ):
        await console_sign_in(a, root, daemon, "a.meier", "editor")
        csrf = (await console_page(a, f"{root}{NEW}?playbook=major_fire"))[1]
        status, _, where = await console_post(a, f"{root}{NEW}", fire_form(csrf))
        assert status == 303
        incident = where.split("/console/incidents/")[1].split("?")[0]
        await watcher.alert_in(incident, "expired")
        assert hook.requests == []


async def test_bad_params_and_a_viewer_create_nothing_and_params_are_shown_as_text(
    tmp_path, mosquitto, hooks
):
    config = config_for(tmp_path, mosquitto, hooks)
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as editor,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as viewer,
        running_daemon(config) as daemon,
    ):
        await console_sign_in(editor, root, daemon, "c.presse", "editor")
        await console_sign_in(viewer, root, daemon, "leitstelle", "viewer")
        csrf = (await console_page(editor, f"{root}{NEW}?playbook=major_fire&lang=en"))[1]

        status, fragment, _ = await console_post(
            editor,
            f"{root}{NEW}/preview?lang=en",
            fire_form(csrf, **{"param.radius_m": "50", "param.location": ""}),
        )
        assert status == 200
        assert 'data-ready="no"' in fragment
        assert "Location: is required" in fragment
        assert "Radius (m): is 50, at least 100" in fragment

        status, page, _ = await console_post(
            editor, f"{root}{NEW}?lang=en", fire_form(csrf, **{"param.radius_m": "50"})
        )
        assert status == 400
        assert "Not proposed: correct what is marked." in page
        assert "is 50, at least 100" in page
        assert 'value="50"' in page  # what was typed stays

        status, fragment, _ = await console_post(
            editor,
            f"{root}{NEW}/preview?lang=en",
            fire_form(csrf, **{"param.location": f"Acker {XSS}"[:60]}),
        )
        assert XSS not in fragment
        assert "&lt;script&gt;" in fragment

        viewer_csrf = (await console_page(viewer, f"{root}/console?lang=en"))[1]
        status, _, _ = await console_post(viewer, f"{root}{NEW}", fire_form(viewer_csrf))
        assert status == 403
        async with viewer.get(f"{root}{NEW}") as answer:
            assert answer.status == 403
        status, _, _ = await console_post(editor, f"{root}{NEW}", fire_form("forged"))
        assert status == 403
        assert await daemon.store.list_alerts(10) == []


async def test_a_drill_from_the_form_reaches_only_the_channel_set_up_for_drills(
    tmp_path, mosquitto, watcher, hooks
):
    hook = hooks[0]
    config = config_for(tmp_path, mosquitto, hooks)
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as editor,
        running_daemon(config) as daemon,
    ):
        await console_sign_in(editor, root, daemon, "c.presse", "editor")
        csrf = (await console_page(editor, f"{root}{NEW}?playbook=major_fire&mode=drill"))[1]
        status, fragment, _ = await console_post(
            editor, f"{root}{NEW}/preview?lang=en", fire_form(csrf, mode="drill")
        )
        assert "simulated in a drill" in fragment  # the dry_run channel
        status, _, where = await console_post(
            editor, f"{root}{NEW}?lang=en", fire_form(csrf, mode="drill")
        )
        assert status == 303
        assert where.startswith("/console/drills/DRILL-")
        alert_id = where.split("/console/drills/")[1].split("?")[0]
        await watcher.alert_in(alert_id, "sent")
        deliveries = {d.channel_id: d for d in await daemon.store.get_deliveries(alert_id)}
        assert deliveries["web"].state == "delivered"
        assert deliveries["quiet"].state == "dry_run"
        assert len(hook.requests) == 1
        assert hooks[1].requests == []
        assert hook.requests[0].json["text"].startswith("ÜBUNG")
        alert = await daemon.store.get_alert(alert_id)
        assert alert is not None
        assert alert.mode == "drill"
        assert alert.proposed_by is None


async def test_the_all_clear_is_proposed_from_the_incident_screen_with_its_params(
    tmp_path, mosquitto, watcher, hooks
):
    hook = hooks[0]
    config = config_for(tmp_path, mosquitto, hooks)
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as editor,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as officer,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as viewer,
        running_daemon(config) as daemon,
    ):
        await console_sign_in(editor, root, daemon, "c.presse", "editor")
        await console_sign_in(officer, root, daemon, "b.kaya", "officer")
        await console_sign_in(viewer, root, daemon, "leitstelle", "viewer")
        await publish(mosquitto.url, "bc/trigger", signed_trigger("FW-AC-1"))
        await watcher.alert_in("FW-AC-1", "sent")
        page = f"{root}/console/incidents/FW-AC-1"

        async with viewer.get(f"{page}?lang=en") as answer:
            assert 'data-testid="all-clear"' not in await answer.text()
        async with editor.get(f"{page}?lang=en") as answer:
            html = await answer.text()
        link = re.search(r'href="([^"]+)" data-testid="all-clear"', html)
        assert link is not None
        async with editor.get(root + link.group(1).replace("&amp;", "&")) as answer:
            form_page = await answer.text()
        assert "Next stage for incident FW-AC-1" in form_page
        assert 'value="all_clear" selected' in form_page
        assert 'value="Ackerstraße 12"' in form_page  # the incident's params, prefilled
        csrf = CSRF.search(form_page)
        assert csrf is not None
        form = fire_form(csrf.group(1), stage="all_clear", incident="FW-AC-1")
        del form["mode"]
        status, _, where = await console_post(editor, f"{root}{NEW}?lang=en", form)
        assert status == 303
        assert where == "/console/incidents/FW-AC-1?lang=en"
        alerts = await daemon.store.incident_alerts("FW-AC-1")
        assert [a.stage for a in alerts] == ["warning", "all_clear"]
        clear = alerts[1]
        assert clear.state == "awaiting_confirmation"
        assert len(hook.requests) == 1

        officer_csrf = (await console_page(officer, f"{page}?lang=en"))[1]
        decide = f"{page}/alerts/{clear.id}/decide?lang=en"
        status, _, _ = await console_post(
            officer, decide, {"csrf": officer_csrf, "action": "release"}
        )
        assert status == 200
        await watcher.alert_in(clear.id, "sent")
        assert len(hook.requests) == 2
        assert hook.requests[1].json["stage"] == "all_clear"


async def test_a_drill_page_sends_the_browser_to_its_report_when_it_ends(
    tmp_path, mosquitto, watcher, hooks
):
    config = config_for(tmp_path, mosquitto, hooks)
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as editor,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as viewer,
        running_daemon(config) as daemon,
    ):
        await console_sign_in(editor, root, daemon, "c.presse", "editor")
        await console_sign_in(viewer, root, daemon, "leitstelle", "viewer")
        async with editor.get(f"{root}/console/drills?lang=en") as answer:
            drills = await answer.text()
        assert 'data-testid="drill-bomb_defusal-all_clear"' in drills
        async with viewer.get(f"{root}/console/drills") as answer:
            assert answer.status == 403  # a viewer follows drills, starting one is an editor's
        csrf = (await console_page(editor, f"{root}{NEW}?playbook=major_fire&mode=drill"))[1]
        status, _, where = await console_post(
            editor, f"{root}{NEW}?lang=en", fire_form(csrf, mode="drill")
        )
        assert status == 303
        alert_id = where.split("/console/drills/")[1].split("?")[0]
        await watcher.alert_in(alert_id, "sent")

        async with viewer.get(f"{root}/console/drills/{alert_id}/state?lang=en") as answer:
            assert answer.status == 200
            report = answer.headers["HX-Redirect"]
            assert 'data-ended="yes"' in await answer.text()
        assert report == f"/console/incidents/{alert_id}/report?lang=en"
        async with viewer.get(root + report) as answer:
            assert answer.status == 200
            assert "script-src" not in answer.headers["Content-Security-Policy"]
            assert "Content-Disposition" not in answer.headers
            assert alert_id in await answer.text()
        async with viewer.get(f"{root}/console/drills/FW-NOT-A-DRILL") as answer:
            assert answer.status == 404


async def test_the_proposers_own_mobile_link_cannot_release_and_the_next_officers_can(
    tmp_path, mosquitto, watcher, hooks
):
    public, a_phone, b_phone = hooks
    channels = {
        "web": webhook(public.url),
        "officer_a": webhook(a_phone.url, audience="internal"),
        "officer_b": webhook(b_phone.url, audience="internal"),
    }
    extra = {
        "duty_officers": [
            {"name": "A. Schmidt", "notify": ["officer_a"]},
            {"name": "B. Yilmaz", "notify": ["officer_b"]},
        ],
        "escalate_after": "300ms",
        "confirm": {"undo_window": "0s"},
    }
    confirmation = {"mode": "required", "timeout": "20s", "on_timeout": "abort"}
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels=channels, extra=extra, confirmation=confirmation
    )
    root = yaml.safe_load(config.read_text(encoding="utf-8"))["http"]["public_url"]
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as console,
        aiohttp.ClientSession(headers={"Accept-Language": "en"}) as phone,
        running_daemon(config) as daemon,
    ):
        await console_sign_in(console, root, daemon, "a.schmidt", "officer", "A. Schmidt")
        csrf = (await console_page(console, f"{root}{NEW}?playbook=major_fire"))[1]
        status, _, where = await console_post(console, f"{root}{NEW}", fire_form(csrf))
        assert status == 303
        incident = where.split("/console/incidents/")[1].split("?")[0]
        alert = await daemon.store.get_alert(incident)
        assert alert is not None
        assert alert.proposed_by == "A. Schmidt"  # the account's duty officer

        await a_phone.wait_for_requests(1)  # the daemon asks A. Schmidt as for any trigger
        link = a_phone.posts[0].json["confirm_url"]
        async with phone.get(link) as answer:
            assert "Proposed in the console by: <strong>A. Schmidt</strong>" in await answer.text()
        async with phone.post(link, data={"action": "release"}) as answer:
            assert answer.status == 403
            assert "Another person must release it" in await answer.text()
        assert public.requests == []

        await b_phone.wait_for_requests(1)  # escalated to the next duty officer
        async with phone.post(
            b_phone.posts[0].json["confirm_url"], data={"action": "release"}
        ) as answer:
            assert answer.status == 200
        await watcher.alert_in(incident, "sent")
        assert len(public.requests) == 1
        released = await daemon.store.get_alert(incident)
        assert released is not None
        assert released.confirmed_by == "B. Yilmaz"
