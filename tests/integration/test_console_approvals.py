"""The console's "Templates and approvals" screen against a real daemon: roles, CSRF, four
eyes by two accounts, and a live trigger accepted once two officers have approved."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from broadcaster.accounts import add_account
from broadcaster.daemon import Daemon
from broadcaster.models import Account
from broadcaster.store import open_store
from tests.integration.harness import (
    API_TOKEN,
    running_daemon,
    signed_trigger,
    webhook,
    write_deployment,
)

PASSWORD = "correct horse battery"
KEY = "major_fire/warning/short.de.j2"
ACCOUNTS = (("k.becker", "officer"), ("m.weber", "officer"), ("leitstelle", "viewer"))


@dataclass
class Person:
    """One browser's worth of cookies, signed in as one account."""

    http: aiohttp.ClientSession
    base: str

    async def sign_in(self, name: str) -> None:
        page = await self.http.get(f"{self.base}/console/login")
        token = hidden(await page.text(), "csrf")
        form = {"csrf": token, "name": name, "password": PASSWORD, "next": "/console/templates"}
        answer = await self.http.post(f"{self.base}/console/login", data=form)
        assert answer.status == 200, await answer.text()
        assert str(answer.url).endswith("/console/templates")

    async def page(self, key: str = KEY) -> str:
        answer = await self.http.get(f"{self.base}/console/templates/{key}?lang=en")
        assert answer.status == 200, await answer.text()
        return await answer.text()

    async def approve(self, key: str = KEY, **form: str) -> tuple[int, str]:
        answer = await self.http.post(
            f"{self.base}/console/templates/{key}/approve?lang=en",
            data=form,
            allow_redirects=True,
        )
        return answer.status, await answer.text()

    async def approve_as_shown(self, key: str = KEY) -> tuple[int, str]:
        page = await self.page(key)
        return await self.approve(key, csrf=hidden(page, "csrf"), sha256=hidden(page, "sha256"))


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found is not None, f"no hidden field {name}"
    return found.group(1)


async def add_accounts(config: Path) -> None:
    store = open_store("sqlite:///var/broadcaster.db", config.parent)
    await store.open()
    try:
        for name, role in ACCOUNTS:
            await add_account(store, name, role, PASSWORD, officer=None, officers=(), by="test")
    finally:
        await store.close()


@asynccontextmanager
async def person(base: str, name: str) -> AsyncIterator[Person]:
    # unsafe: the daemon listens on 127.0.0.1, and aiohttp keeps no cookies for an IP
    # otherwise. Origin: what a browser sends on a form post from the console's own page.
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar, headers={"Origin": base}) as http:
        someone = Person(http, base)
        await someone.sign_in(name)
        yield someone


async def trigger(daemon: Daemon, trigger_id: str) -> tuple[int, dict[str, Any]]:
    base = daemon.settings.http.public_url
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/api/triggers",
            json=signed_trigger(trigger_id),
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as answer,
    ):
        return answer.status, await answer.json()


def approvers(config: Path) -> list[str]:
    data = yaml.safe_load((config.parent / "templates" / "approvals.yaml").read_text("utf-8"))
    names: list[str] = data[KEY]["approved_by"]
    return names


async def test_two_officers_approve_in_the_console_and_a_live_alert_may_then_use_it(
    tmp_path: Path, mosquitto: Any, hooks: Any
) -> None:
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"public": webhook(hooks[0].url)}
    )
    template = tmp_path / "templates" / KEY
    # Markup in a template is text to the console: shown escaped, never run.
    changed = '<script>alert("x")</script>NEU: ' + template.read_text(encoding="utf-8")
    template.write_text(changed, encoding="utf-8")
    await add_accounts(config)
    async with running_daemon(config) as daemon:
        base = daemon.settings.http.public_url
        status, refused = await trigger(daemon, "FW-BEFORE")
        assert (status, refused["error"]) == (400, "template_not_approved")

        async with (
            person(base, "leitstelle") as viewer,
            person(base, "k.becker") as becker,
            person(base, "m.weber") as weber,
        ):
            listing = await viewer.http.get(f"{base}/console/templates?lang=en")
            text = await listing.text()
            assert listing.status == 200
            assert f'data-key="{KEY}" data-state="changed"' in text
            assert 'data-key="major_fire/warning/long.de.j2" data-state="approved"' in text
            assert re.findall(r'data-pending="([^"]+)"', text) == [KEY]  # what waits, first
            assert "Retraction (all playbooks)" in text
            assert "<script" not in text
            assert "script-src 'self'" in listing.headers["Content-Security-Policy"]

            # A viewer sees the text but may not approve, not even by posting directly.
            shown = await viewer.page()
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;NEU: " in shown
            assert "<script" not in shown
            assert "Only duty officers" in shown
            # The diff from the approved text: the changed line removed and added, escaped.
            assert 'data-testid="diff"' in shown
            added = re.findall(r'<li class="added" data-kind="added">(.*?)</li>', shown)
            removed = re.findall(r'<li class="removed" data-kind="removed">(.*?)</li>', shown)
            assert len(added) == 1
            assert len(removed) == 1
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;NEU: " in added[0]
            assert 'data-testid="approved-text"' in shown
            sha = hidden(await becker.page(), "sha256")
            status, page = await viewer.approve(csrf=hidden(shown, "csrf"), sha256=sha)
            assert status == 403
            assert "needs “officer”" in page

            # An officer's POST without the session's token is refused.
            status, _ = await becker.approve(sha256=sha)
            assert status == 403
            status, _ = await becker.approve(csrf="forged", sha256=sha)
            assert status == 403
            assert approvers(config) == ["A. Schmidt", "B. Yilmaz"]  # the old approval

            status, page = await becker.approve_as_shown()
            assert status == 200
            assert "A second person, with another account, must now approve." in page
            assert 'data-testid="state">Awaiting a second approval' in page
            assert approvers(config) == ["k.becker"]
            assert "You have approved this version" in await becker.page()

            # The same account again, with a valid form: refused, nothing recorded.
            page = await becker.page()
            status, again = await becker.approve(csrf=hidden(page, "csrf"), sha256=sha)
            assert status == 409
            assert "Refused: k.becker has already approved this version" in again
            assert approvers(config) == ["k.becker"]
            status, still = await trigger(daemon, "FW-ONE-APPROVAL")
            assert (status, still["error"]) == (400, "template_not_approved")

            # Approving bytes other than those shown is refused.
            page = await weber.page()
            status, stale = await weber.approve(csrf=hidden(page, "csrf"), sha256="0" * 64)
            assert status == 409
            assert "changed since you opened it" in stale
            # Only a template of a loaded playbook, never a path.
            status, _ = await weber.approve(
                "../broadcaster.yaml", csrf=hidden(page, "csrf"), sha256=sha
            )
            assert status == 404

            status, page = await weber.approve_as_shown()
            assert status == 200
            assert "The template may now be used live." in page
            assert approvers(config) == ["k.becker", "m.weber"]

        status, accepted = await trigger(daemon, "FW-AFTER")
        assert status == 202, accepted
        trail = await daemon.store.audit_trail(None)
    approvals = [
        (e.event, e.actor, e.detail.get("reason"), e.detail.get("state"))
        for e in trail
        if e.event.startswith("template_")
    ]
    assert approvals == [
        ("template_approved", "k.becker", None, "awaiting"),
        ("template_approval_refused", "k.becker", "same_person", None),
        ("template_approval_refused", "m.weber", "changed", None),
        ("template_approved", "m.weber", None, "approved"),
    ]


def test_an_account_linked_to_a_duty_officer_approves_under_the_officers_name() -> None:
    linked = Account(name="a.schmidt", role="officer", password_hash="x", officer="A. Schmidt")
    assert linked.person == "A. Schmidt"
    assert linked.model_copy(update={"officer": None}).person == "a.schmidt"
