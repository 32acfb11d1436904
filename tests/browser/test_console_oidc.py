"""Single sign-on in Debian's Chromium: from a console page to the sign-in page, its
city-account button to the local OIDC provider and back, and on to the page asked for,
signed in (the Strict session cookie is sent after the provider's cross-site redirect,
because our own page moves on). UPDATE_DOCS_IMAGES=1 keeps the screenshot."""

from __future__ import annotations

import re

from playwright.async_api import expect

from broadcaster.accounts import add_account
from tests.browser.conftest import PHONE
from tests.browser.console import PASSWORD, check_layout
from tests.browser.images import images
from tests.fakes.oidc import FakeOidc
from tests.integration.harness import OIDC_SECRET, oidc_deployment, running_daemon


async def test_an_officer_signs_in_with_the_city_account(tmp_path, mosquitto, hooks, phone):
    async with FakeOidc.start(client_id="broadcaster", client_secret=OIDC_SECRET) as idp:
        config, root = oidc_deployment(tmp_path, mosquitto, hooks, idp)
        errors: list[str] = []
        async with running_daemon(config) as daemon:
            await add_account(
                daemon.store, "a.meier", "officer", PASSWORD, officer=None, officers=(), by="t"
            )
            page = await phone.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(f"{root}/console/channels")
            await expect(page).to_have_url(re.compile(r"/console/login\?next="))
            sso = page.get_by_test_id("sso")
            await expect(sso).to_have_text("Mit dem Stadt-Konto anmelden")
            await page.screenshot(path=str(images("console") / "signin-sso-phone.png"))
            await sso.click()
            await expect(page).to_have_url(f"{root}/console/channels")
            await expect(page.get_by_test_id("account")).to_have_text("a.meier")
            await check_layout(page, PHONE["width"])
    assert idp.tokens_issued == 1
    assert [e for e in errors if "Content Security Policy" in e] == []
