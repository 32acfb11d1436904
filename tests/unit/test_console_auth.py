"""The console's sign-in layer (web/console/): cookies, CSRF, lock-out, roles.

Over HTTP against a real SQLite store, with a tiny guarded route per role written here,
and a clock moved by hand (no sleeps).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from yarl import URL

from broadcaster.accounts import hash_password, reset_password, set_disabled
from broadcaster.config import Settings
from broadcaster.models import Account, Role
from broadcaster.reload import load_usable
from broadcaster.store.sqlite import SqliteStore
from broadcaster.web.api import STATE, WebState, make_app
from broadcaster.web.console import sessions
from broadcaster.web.console.auth import account_of, add_console_auth, csrf_token, requires
from broadcaster.web.console.context import ConsoleAuth
from broadcaster.web.console.login import safe_next
from broadcaster.web.console.sessions import SESSION_COOKIE, SessionKey
from tests.integration.harness import write_deployment

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
KEY = SessionKey.from_setting("x" * 40)


# -- the cookie, as a pure function ------------------------------------------------------
def test_a_session_cookie_round_trips_and_refuses_tampering_expiry_and_other_keys() -> None:
    value = sessions.issue(KEY, "kim", 3, T0, timedelta(hours=8))
    session = sessions.read(KEY, value, T0 + timedelta(hours=7, minutes=59))
    assert session is not None
    assert (session.account, session.version, session.expires_at) == (
        "kim",
        3,
        T0 + timedelta(hours=8),
    )
    body, mac = value.split(".")
    forged = sessions._b64(b'{"a":"admin","e":9999999999,"i":0,"n":"x","v":0}')
    flipped = body[:-1] + ("A" if body[-1] != "A" else "B")
    for bad in (f"{forged}.{mac}", f"{flipped}.{mac}", f"{body}.{mac[:-1]}x", body, "", "..."):
        assert sessions.read(KEY, bad, T0) is None, bad
    assert sessions.read(KEY, value, T0 + timedelta(hours=8)) is None  # expired
    assert sessions.read(KEY, value, T0 - timedelta(seconds=1)) is None  # not yet issued
    assert sessions.read(SessionKey.from_setting("y" * 40), value, T0) is None
    # Another daemon with the same console.session_secret accepts it.
    assert sessions.read(SessionKey.from_setting("x" * 40), value, T0) == session
    assert sessions.read(SessionKey.random(), value, T0) is None
    # A sign-in form's cookie is signed for another purpose: never a session.
    form_cookie, _ = sessions.issue_login_form(KEY, T0)
    assert sessions.read(KEY, form_cookie, T0) is None
    assert "x" * 40 not in repr(KEY)


def test_a_short_session_secret_is_refused_with_its_key() -> None:
    with pytest.raises(ValidationError, match=r"console\.session_secret|session_secret"):
        Settings.model_validate({"console": {"session_secret": "short"}})
    settings = Settings.model_validate({"console": {"lock_after": 3, "lock_for": "2m"}})
    assert (settings.console.lock_after, settings.console.lock_for) == (3, timedelta(minutes=2))
    assert settings.console.session_lifetime == timedelta(hours=8)


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/console/incidents/FW-1?tab=audit", "/console/incidents/FW-1?tab=audit"),
        ("/console", "/console"),
        (None, "/console"),
        ("https://evil.example/console", "/console"),
        ("//evil.example/console", "/console"),
        ("/\\evil.example", "/console"),
        ("/consolex", "/console"),
        ("/api/alerts", "/console"),
        ("/console/../api/alerts", "/console"),
        ("/console/%2e%2e/api", "/console"),
        ("/console/login", "/console"),
        ("/console/\nSet-Cookie:x", "/console"),
    ],
)
def test_after_sign_in_only_a_path_under_console(asked: str | None, goes_to: str) -> None:
    assert safe_next(asked) == goes_to


# -- over HTTP ---------------------------------------------------------------------------
@dataclass
class Console:
    client: TestClient[Any, Any]
    store: SqliteStore
    auth: ConsoleAuth
    now: list[datetime]
    reached: list[str] = field(default_factory=list)

    async def add(self, name: str, role: Role, password: str = PASSWORD) -> None:
        account = Account(name=name, role=role, password_hash=hash_password(password))
        assert await self.store.save_account(account, new=True)

    async def form_token(self, path: str = "/console/login") -> str:
        page = await self.client.get(path)
        assert page.status == 200
        found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert found is not None
        return found.group(1)

    async def sign_in(self, name: str, password: str = PASSWORD, next_path: str = "") -> Any:
        token = await self.form_token()
        form = {"csrf": token, "name": name, "password": password, "next": next_path}
        return await self.client.post("/console/login", data=form, allow_redirects=False)

    async def page_token(self) -> str:
        answer = await self.client.get("/console/test/viewer")
        assert answer.status == 200, await answer.text()
        token: str = (await answer.json())["csrf"]
        return token


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    config = write_deployment(
        tmp_path, mqtt_url="mqtt://127.0.0.1:1", channels={"log": {"type": "log"}}
    )
    deployment = load_usable(config).deployment
    store = SqliteStore(tmp_path / "console.db")
    await store.open()
    state = WebState(
        receiver=None,  # type: ignore[arg-type]
        store=store,
        metrics=None,  # type: ignore[arg-type]
        api_token=None,
        healthy=None,  # type: ignore[arg-type]
        retractor=None,  # type: ignore[arg-type]
    )
    app = make_app(state)
    auth = add_console_auth(app, deployment, lambda app: app[STATE].store)
    now = [T0]
    auth.clock = lambda: now[0]
    reached: list[str] = []

    def route(role: Role) -> Any:
        @requires(role)
        async def handler(request: web.Request) -> web.Response:
            reached.append(f"{request.method} {role} {account_of(request).name}")
            return web.json_response(
                {"account": account_of(request).name, "csrf": csrf_token(request)}
            )

        return handler

    for role in ("viewer", "officer"):
        app.router.add_get(f"/console/test/{role}", route(role))
        app.router.add_post(f"/console/test/{role}", route(role))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Console(client, store, auth, now, reached)
    finally:
        await client.close()
        await store.close()


async def test_sign_in_sets_a_strict_cookie_and_goes_to_next(console: Console) -> None:
    await console.add("kim", "officer")
    page = await console.client.get("/console/login?lang=en")
    html = await page.text()
    assert '<html lang="en">' in html
    assert 'for="name"' in html
    assert 'for="password"' in html
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert "<script" not in html

    answer = await console.sign_in("kim", next_path="/console/test/officer?x=1")
    assert answer.status == 303
    assert answer.headers["Location"] == "/console/test/officer?x=1"
    cookie = next(
        h for h in answer.headers.getall("Set-Cookie") if h.startswith(f"{SESSION_COOKIE}=")
    )
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=28800"):
        assert attribute in cookie
    assert "Secure" not in cookie  # http:// public_url
    reached = await console.client.get("/console/test/officer")
    assert (await reached.json())["account"] == "kim"
    # An https public_url makes it Secure.
    settings = console.auth.deployment.settings
    https = settings.http.model_copy(update={"public_url": "https://warn.example"})
    console.auth.deployment = replace(
        console.auth.deployment, settings=settings.model_copy(update={"http": https})
    )
    assert console.auth.secure is True
    console.client.session.cookie_jar.clear()
    secure = await console.sign_in("kim")
    assert "Secure" in secure.headers["Set-Cookie"]


async def test_german_by_accept_language_and_a_switch(console: Console) -> None:
    german = await console.client.get("/console/login", headers={"Accept-Language": "de-DE"})
    html = await german.text()
    assert '<html lang="de">' in html
    assert "Passwort" in html
    assert 'href="/console/login?lang=en&amp;next=/console"' in html
    english = await console.client.get("/console/login", headers={"Accept-Language": "en-GB"})
    assert "Password" in await english.text()


async def test_no_session_redirects_pages_and_answers_401_to_json_and_event_streams(
    console: Console,
) -> None:
    page = await console.client.get("/console/test/viewer?a=b", allow_redirects=False)
    assert page.status == 303
    location = URL(page.headers["Location"])
    assert (location.path, location.query["next"]) == ("/console/login", "/console/test/viewer?a=b")
    for accept in ("application/json", "text/event-stream"):
        data = await console.client.get("/console/test/viewer", headers={"Accept": accept})
        assert data.status == 401
        assert (await data.json())["error"] == "unauthorized"
    assert console.reached == []


async def test_a_tampered_expired_or_foreign_cookie_is_no_session(console: Console) -> None:
    await console.add("kim", "admin")
    assert (await console.sign_in("kim")).status == 303
    jar = console.client.session.cookie_jar
    value = jar.filter_cookies(console.client.make_url("/console"))[SESSION_COOKIE].value
    jar.clear()

    async def with_cookie(cookie: str) -> int:
        answer = await console.client.get(
            "/console/test/viewer",
            headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
            allow_redirects=False,
        )
        return answer.status

    assert await with_cookie(value) == 200
    body, mac = value.split(".")
    foreign = sessions.issue(SessionKey.random(), "kim", 0, T0, timedelta(hours=1))
    for bad in (f"{body}x.{mac}", f"{body}.{mac[:-3]}", foreign, ""):
        assert await with_cookie(bad) == 303, bad
    console.now[0] = T0 + timedelta(hours=8)
    assert await with_cookie(value) == 303
    assert console.reached == ["GET viewer kim"]


async def test_disable_and_reset_end_existing_sessions(console: Console) -> None:
    await console.add("kim", "viewer")
    assert (await console.sign_in("kim")).status == 303
    assert (await console.client.get("/console/test/viewer")).status == 200
    await set_disabled(console.store, "kim", True, by="test")
    assert (await console.client.get("/console/test/viewer", allow_redirects=False)).status == 303
    await set_disabled(console.store, "kim", False, by="test")
    # Enabled again, the old session stays ended: a new sign-in is needed.
    assert (await console.client.get("/console/test/viewer", allow_redirects=False)).status == 303
    assert (await console.sign_in("kim")).status == 303
    assert (await console.client.get("/console/test/viewer")).status == 200
    await reset_password(console.store, "kim", "a brand new passphrase", by="test")
    assert (await console.client.get("/console/test/viewer", allow_redirects=False)).status == 303
    assert (await console.sign_in("kim")).status == 401  # the old password
    assert (await console.sign_in("kim", "a brand new passphrase")).status == 303
    assert len(console.reached) == 2


async def test_a_post_needs_the_session_token_and_our_origin(console: Console) -> None:
    await console.add("kim", "officer")
    await console.sign_in("kim")
    token = await console.page_token()
    post = console.client.post
    missing = await post("/console/test/officer", data={"x": "1"})
    wrong = await post("/console/test/officer", data={"csrf": token[:-2] + "xx"})
    other_site = await post(
        "/console/test/officer", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    cross_site = await post(
        "/console/test/officer", data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    for refused in (missing, wrong, other_site, cross_site):
        assert refused.status == 403
    assert console.reached == ["GET viewer kim"]
    ok = await post("/console/test/officer", data={"csrf": token})
    assert ok.status == 200
    by_header = await post("/console/test/officer", headers={"X-CSRF-Token": token})
    assert by_header.status == 200
    assert console.reached[1:] == ["POST officer kim", "POST officer kim"]
    # Another session's token is no good here.
    console.client.session.cookie_jar.clear()
    await console.add("ann", "officer")
    await console.sign_in("ann")
    assert (await post("/console/test/officer", data={"csrf": token})).status == 403


async def test_the_sign_in_form_itself_needs_its_token_and_our_origin(console: Console) -> None:
    await console.add("kim", "viewer")
    token = await console.form_token()
    form = {"csrf": token, "name": "kim", "password": PASSWORD}
    foreign = await console.client.post(
        "/console/login", data=form, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    no_token = await console.client.post("/console/login", data={**form, "csrf": ""})
    assert no_token.status == 403
    trail = await console.store.audit_trail(None)
    assert [e.event for e in trail] == []  # refused before any password was checked


async def test_roles_are_ordered_and_a_viewer_cannot_act_even_by_direct_post(
    console: Console,
) -> None:
    await console.add("viewer1", "viewer")
    await console.add("boss", "admin")
    await console.sign_in("viewer1")
    token = await console.page_token()
    page = await console.client.get("/console/test/officer")
    assert page.status == 403
    assert "viewer" in await page.text()
    direct = await console.client.post("/console/test/officer", data={"csrf": token})
    assert direct.status == 403
    as_json = await console.client.post(
        "/console/test/officer", headers={"X-CSRF-Token": token, "Accept": "application/json"}
    )
    assert as_json.status == 403
    assert (await as_json.json())["error"] == "forbidden"
    assert console.reached == ["GET viewer viewer1"]
    console.client.session.cookie_jar.clear()
    await console.sign_in("boss")
    assert (await console.client.get("/console/test/officer")).status == 200
    assert (await console.client.get("/console/test/viewer")).status == 200
    with pytest.raises(ValueError, match="unknown role"):
        requires("chief")  # type: ignore[arg-type]


@contextmanager
def info_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every log entry from info up: a daemon test earlier in the run may have configured
    a higher level, which capture_logs alone keeps."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.configure(**saved)


async def test_five_failures_lock_the_account_until_the_lock_ends(console: Console) -> None:
    await console.add("kim", "editor")
    with info_logs() as logs:
        for n in range(1, 5):
            wrong = await console.sign_in("kim", f"wrong guess number {n}")
            assert wrong.status == 401
            assert "falsch" in await wrong.text()  # German by default
        fifth = await console.sign_in("kim", "wrong guess number 5")
        assert fifth.status == 403
        assert "Das Konto ist gesperrt" in await fifth.text()
        console.now[0] = T0 + timedelta(minutes=14, seconds=59)
        sixth = await console.sign_in("kim", PASSWORD)  # right, but still locked
        assert sixth.status == 403
        assert "Versuchen Sie es in 1 Min. erneut" in await sixth.text()
        assert SESSION_COOKIE not in sixth.cookies
        unknown = await console.sign_in("nobody", PASSWORD)
        assert unknown.status == 401
        console.now[0] = T0 + timedelta(minutes=15)
        assert (await console.sign_in("kim", PASSWORD)).status == 303
        logout = await console.client.post(
            "/console/logout", data={"csrf": await console.page_token()}, allow_redirects=False
        )
        assert logout.status == 303
        assert logout.headers["Location"].startswith("/console/login?signed_out=1")
    after = await console.client.get("/console/test/viewer", allow_redirects=False)
    assert after.status == 303
    trail = await console.store.audit_trail(None)
    assert [(e.event, e.actor, e.detail.get("reason")) for e in trail] == [
        *[("login_failed", "kim", "wrong_password")] * 5,
        ("login_locked", "kim", None),
        ("login_refused", "kim", "locked"),
        ("login_failed", "anonymous", "unknown_account"),
        ("login", "kim", None),
        ("logout", "kim", None),
    ]
    assert trail[5].detail["until"] == (T0 + timedelta(minutes=15)).isoformat()
    text = repr([e.detail for e in trail]) + repr(logs)
    assert PASSWORD not in text
    assert "wrong guess" not in text
    assert "nobody" not in text
    assert "argon2" not in text
    kept = await console.store.get_account("kim")
    assert kept is not None
    assert (kept.failed_logins, kept.locked_until) == (0, None)
    assert sum(1 for entry in logs if entry["event"] == "console_login_failed") == 6


async def test_a_typed_name_is_shown_back_as_text(console: Console) -> None:
    script = '"><script>alert(1)</script>'
    answer = await console.sign_in(script, "whatever it may be")
    assert answer.status == 401
    html = await answer.text()
    assert "<script>" not in html
    assert "&#34;&gt;&lt;script&gt;" in html or "&quot;&gt;&lt;script&gt;" in html
    trail = await console.store.audit_trail(None)
    assert [(e.event, e.actor) for e in trail] == [("login_failed", "anonymous")]
    assert "script" not in repr(trail[0].detail)
