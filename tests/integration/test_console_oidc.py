"""Single sign-on to the console through a local OIDC provider (tests/fakes/oidc.py) on a
real daemon: the authorization code flow with PKCE ends in a session of the store's
account with its own role; every fault a provider or an attacker can bring ends in a
clear page and no session: a state from another sign-in, the provider's refusal, an ID
token for another client, expired, with another nonce or signed by an unknown key, and a
person without an account or with a disabled one. Each attempt is audited."""

from __future__ import annotations

from typing import Any

import aiohttp

from broadcaster.accounts import add_account
from tests.fakes.oidc import FakeOidc
from tests.integration.harness import (
    CONSOLE_PASSWORD,
    OIDC_SECRET,
    oidc_deployment,
    running_daemon,
)

ENGLISH = {"Accept-Language": "en"}


async def sign_in(http: aiohttp.ClientSession, root: str, next_path: str = "/console") -> Any:
    """Through the provider and back, hop by hop as a browser goes: the last answer."""
    url = f"{root}/console/login/oidc?next={next_path}"
    for _ in range(4):
        async with http.get(url, allow_redirects=False) as answer:
            if answer.status not in (301, 302, 303):
                return answer.status, await answer.text()
            url = answer.headers["Location"]
    raise AssertionError("too many redirects")


async def test_single_sign_on_maps_the_provider_to_the_stores_account(tmp_path, mosquitto, hooks):
    async with FakeOidc.start(client_id="broadcaster", client_secret=OIDC_SECRET) as idp:
        config, root = oidc_deployment(tmp_path, mosquitto, hooks, idp)
        async with running_daemon(config) as daemon:
            await add_account(
                daemon.store,
                "a.meier",
                "officer",
                CONSOLE_PASSWORD,
                officer=None,
                officers=(),
                by="t",
            )
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.get(f"{root}/console/login?lang=en") as page:
                    assert 'data-testid="sso"' in await page.text()
                status, page = await sign_in(http, root, "/console/channels")
                assert status == 200
                assert 'content="0; url=/console/channels"' in page  # moves on by itself
                async with http.get(f"{root}/console/channels?lang=en") as board:
                    assert board.status == 200
                    assert 'data-testid="account">a.meier<' in await board.text()
            trail = [e for e in await daemon.store.audit_tail(20) if e.event == "login"]
    assert [(e.actor, e.detail["source"], e.detail["role"]) for e in trail] == [
        ("a.meier", "oidc", "officer")
    ]
    assert idp.tokens_issued == 1


async def refused(http: aiohttp.ClientSession, root: str) -> tuple[int, str, bool]:
    status, page = await sign_in(http, root)
    async with http.get(f"{root}/console", allow_redirects=False) as board:
        signed_in = board.status == 200
    return status, page, signed_in


async def test_every_fault_ends_without_a_session(tmp_path, mosquitto, hooks):
    async with FakeOidc.start(client_id="broadcaster", client_secret=OIDC_SECRET) as idp:
        config, root = oidc_deployment(tmp_path, mosquitto, hooks, idp)
        async with running_daemon(config) as daemon:
            for name in ("a.meier", "z.alt"):
                await add_account(
                    daemon.store,
                    name,
                    "viewer",
                    CONSOLE_PASSWORD,
                    officer=None,
                    officers=(),
                    by="t",
                )
            account = await daemon.store.get_account("z.alt")
            assert account is not None
            await daemon.store.save_account(account.model_copy(update={"disabled": True}))
            outcomes: dict[str, tuple[int, str, bool]] = {}
            cases: list[tuple[str, dict[str, Any]]] = [
                ("other client", {"lie": {"aud": "someone-else"}}),
                ("expired", {"lie": {"exp": 1_000_000_000}}),
                ("other nonce", {"lie": {"nonce": "from-another-sign-in"}}),
                ("foreign key", {"foreign_key": True}),
                ("denied", {"deny": True}),
                ("no account", {"user": {"preferred_username": "x.unbekannt"}}),
                ("disabled", {"user": {"preferred_username": "z.alt"}}),
            ]
            for case, levers in cases:
                idp.lie, idp.foreign_key, idp.deny = {}, False, False
                idp.user = {"preferred_username": "a.meier"}
                for lever, value in levers.items():
                    setattr(idp, lever, value)
                jar = aiohttp.CookieJar(unsafe=True)
                async with aiohttp.ClientSession(cookie_jar=jar, headers=ENGLISH) as http:
                    outcomes[case] = await refused(http, root)
            # A callback whose state is not this browser's sign-in (a forged link).
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar, headers=ENGLISH) as http:
                async with http.get(
                    f"{root}/console/login/oidc?next=/console", allow_redirects=False
                ) as started:
                    assert started.status == 302
                forged = f"{root}/console/login/oidc/callback?code=abc&state=forged"
                async with http.get(forged) as answer:
                    outcomes["forged state"] = (answer.status, await answer.text(), False)
            trail = await daemon.store.audit_tail(50)
    for case, (status, page, signed_in) in outcomes.items():
        assert not signed_in, case
        assert status in (400, 403), (case, status)
        assert 'data-testid="forbidden"' in page, case
    assert "no console account" in outcomes["no account"][1]
    assert "disabled" in outcomes["disabled"][1]
    assert "expired or belongs to another window" in outcomes["forged state"][1]
    reasons = sorted(
        str(e.detail.get("reason")) for e in trail if e.event in ("login_failed", "login_refused")
    )
    assert reasons == sorted(
        [
            "id token: issued for another client",
            "id token: expired",
            "id token: nonce of another sign-in",
            "id token: bad signature",
            "provider: access_denied",
            "unknown_account",
            "disabled",
        ]
    )
    assert [e for e in trail if e.event == "login"] == []
